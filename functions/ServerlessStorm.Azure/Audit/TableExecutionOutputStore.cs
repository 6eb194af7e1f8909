using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Azure.Audit;

/// <summary>
/// Live output in Table Storage, <c>{prefix}ExecutionOutput</c>: PartitionKey <c>{yyyyMMdd}|{shard}</c> (the day in the
/// execution id, its hash modulo <see cref="AzureStorageOptions.AuditShards"/>), RowKey <c>{execution id}|{sequence}-{part}</c>.
/// An execution's output is one range of one partition (read in order, written in transactions), and a day's output
/// is that day's partitions, which retention deletes whole.
/// </summary>
public sealed class TableExecutionOutputStore : IExecutionOutputStore
{
    // A Table property holds 32K characters; longer chunks are split.
    private const int MaxText = 30_000;
    private readonly TableClient _table;
    private readonly int _shards;
    private readonly Lazy<Task> _created;

    public TableExecutionOutputStore(IOptions<AzureStorageOptions> options)
    {
        _table = new StorageClients(options.Value).Tables.GetTableClient(options.Value.Names.ExecutionOutputTable);
        _shards = Math.Clamp(options.Value.AuditShards, 1, 64);
        _created = new(() => _table.CreateIfNotExistsAsync());
    }

    public async Task AppendAsync(string executionId, IReadOnlyList<OutputChunk> chunks, CancellationToken cancellationToken)
    {
        await _created.Value;
        var partition = Partition(executionId);
        // One partition holds an execution's rows, so a batch is one entity-group transaction (up to 100 rows each).
        var rows = chunks.SelectMany(c => Enumerable.Range(0, Math.Max(1, (c.Text.Length + MaxText - 1) / MaxText)).Select(part =>
            new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(partition, Key(executionId, c.Sequence, part))
            {
                ["Stream"] = c.Stream,
                ["Text"] = c.Text.Substring(part * MaxText, Math.Min(MaxText, c.Text.Length - (part * MaxText))),
            }))).ToList();
        foreach (var batch in rows.Chunk(100))
        {
            await _table.SubmitTransactionAsync(batch, cancellationToken);
        }
    }

    public async Task<IReadOnlyList<OutputChunk>> ReadAsync(string executionId, long fromSequence, CancellationToken cancellationToken)
    {
        await _created.Value;
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition(executionId)} and RowKey ge {Key(executionId, fromSequence, 0)} and RowKey lt {executionId + "|~"}");
        var chunks = new List<OutputChunk>();
        await foreach (var row in _table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            var sequence = long.Parse(row.RowKey.AsSpan(executionId.Length + 1, 12), CultureInfo.InvariantCulture);
            var text = row.GetString("Text") ?? "";
            if (chunks.Count > 0 && chunks[^1].Sequence == sequence)
            {
                chunks[^1] = chunks[^1] with { Text = chunks[^1].Text + text };
            }
            else
            {
                chunks.Add(new OutputChunk(sequence, row.GetString("Stream") ?? "stdout", text));
            }
        }

        return chunks;
    }

    public async Task<int> PurgeDayAsync(DateOnly day, IReadOnlySet<string> kept, CancellationToken cancellationToken)
    {
        await _created.Value;
        var deletes = new TableWriteBatcher(_table, batched: true, maxInFlight: 16);
        var deleting = new List<Task>();
        await Task.WhenAll(Enumerable.Range(0, _shards).Select(async shard =>
        {
            var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition(day, shard)}");
            var rows = new List<TableEntity>();
            await foreach (var row in _table.QueryAsync<TableEntity>(filter, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
            {
                rows.Add(row);
            }

            lock (deleting)
            {
                deleting.AddRange(rows.Where(r => !kept.Contains(r.RowKey[..r.RowKey.IndexOf('|', StringComparison.Ordinal)]))
                    .Select(r => DeleteAsync(deletes, r, cancellationToken)));
            }
        }));
        await Task.WhenAll(deleting);
        return deleting.Count;
    }

    private static async Task DeleteAsync(TableWriteBatcher deletes, TableEntity row, CancellationToken cancellationToken)
    {
        try
        {
            await deletes.WriteAsync(new TableTransactionAction(TableTransactionActionType.Delete, new TableEntity(row.PartitionKey, row.RowKey), ETag.All), cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Deleted meanwhile.
        }
    }

    private string Partition(string executionId) =>
        AuditRetention.DayOfExecution(executionId) is { } day
            ? Partition(day, (int)(System.IO.Hashing.XxHash32.HashToUInt32(System.Text.Encoding.UTF8.GetBytes(executionId)) % (uint)_shards))
            : throw new ArgumentException($"'{executionId}' is not an execution id (24 hex digits, the first 8 its creation time)", nameof(executionId));

    private static string Partition(DateOnly day, int shard) => string.Create(CultureInfo.InvariantCulture, $"{day:yyyyMMdd}|{shard:D2}");

    private static string Key(string executionId, long sequence, int part) =>
        string.Create(CultureInfo.InvariantCulture, $"{executionId}|{sequence:D12}-{part:D4}");
}
