using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Azure.Audit;

/// <summary>
/// Live output in Table Storage, a table a day, <c>{prefix}ExecutionOutput{yyyyMMdd}</c> (the day in the execution id):
/// PartitionKey <c>{yyyyMMdd}|{shard}</c> (the id's hash modulo <see cref="AzureStorageOptions.AuditShards"/>), RowKey
/// <c>{execution id}|{sequence}-{part}</c>. An execution's output is one range of one partition (read in order,
/// written in transactions), and retention deletes a day's table whole.
/// </summary>
public sealed class TableExecutionOutputStore : IExecutionOutputStore
{
    // A Table property holds 32K characters; longer chunks are split.
    private const int MaxText = 30_000;
    private readonly StorageClients _clients;
    private readonly int _shards;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<DateOnly, Lazy<Task>> _created = new();

    public TableExecutionOutputStore(IOptions<AzureStorageOptions> options)
    {
        _clients = new StorageClients(options.Value);
        _shards = Math.Clamp(options.Value.AuditShards, 1, 64);
    }

    public async Task AppendAsync(string executionId, IReadOnlyList<OutputChunk> chunks, CancellationToken cancellationToken)
    {
        var day = DayOf(executionId);
        var table = Table(day);
        await _created.GetOrAdd(day, _ => new(() => table.CreateIfNotExistsAsync())).Value;
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
            try
            {
                await table.SubmitTransactionAsync(batch, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode == "TableNotFound")
            {
                // Retention deleted the day's table after this process made it.
                await table.CreateIfNotExistsAsync(cancellationToken);
                await table.SubmitTransactionAsync(batch, cancellationToken);
            }
        }
    }

    public async Task<IReadOnlyList<OutputChunk>> ReadAsync(string executionId, long fromSequence, CancellationToken cancellationToken)
    {
        var chunks = new List<OutputChunk>();
        if (AuditRetention.DayOfExecution(executionId) is null)
        {
            return chunks; // not an execution's id: it has no output
        }

        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition(executionId)} and RowKey ge {Key(executionId, fromSequence, 0)} and RowKey lt {executionId + "|~"}");
        var rows = new List<TableEntity>();
        try
        {
            await foreach (var row in Table(DayOf(executionId)).QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
            {
                rows.Add(row);
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // No output that day.
        }

        foreach (var row in rows)
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

    public async Task<int?> PurgeDayAsync(DateOnly day, IReadOnlySet<string> kept, CancellationToken cancellationToken)
    {
        var table = Table(day);
        if (kept.Count == 0)
        {
            // Nothing of the day stays: the table goes whole, one request, without reading it.
            try
            {
                await table.DeleteAsync(cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                // No output that day.
            }

            _created.TryRemove(day, out _);
            return null;
        }

        var rows = new List<TableEntity>();
        try
        {
            await foreach (var row in table.QueryAsync<TableEntity>(select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
            {
                rows.Add(row);
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return 0; // no output that day
        }

        var purged = rows.Where(r => !kept.Contains(r.RowKey[..r.RowKey.IndexOf('|', StringComparison.Ordinal)])).ToList();
        var deletes = new TableWriteBatcher(table, batched: true, maxInFlight: 16);
        await Task.WhenAll(purged.Select(r => deletes.DeleteIfPresentAsync(r.PartitionKey, r.RowKey, cancellationToken)));
        return purged.Count;
    }

    private static DateOnly DayOf(string executionId) => AuditRetention.DayOfExecution(executionId)
        ?? throw new ArgumentException($"'{executionId}' is not an execution id (24 hex digits, the first 8 its creation time)", nameof(executionId));

    private TableClient Table(DateOnly day) =>
        _clients.Tables.GetTableClient(string.Create(CultureInfo.InvariantCulture, $"{_clients.Names.ExecutionOutputTable}{day:yyyyMMdd}"));

    private string Partition(string executionId) =>
        Partition(DayOf(executionId), (int)(System.IO.Hashing.XxHash32.HashToUInt32(System.Text.Encoding.UTF8.GetBytes(executionId)) % (uint)_shards));

    private static string Partition(DateOnly day, int shard) => string.Create(CultureInfo.InvariantCulture, $"{day:yyyyMMdd}|{shard:D2}");

    private static string Key(string executionId, long sequence, int part) =>
        string.Create(CultureInfo.InvariantCulture, $"{executionId}|{sequence:D12}-{part:D4}");
}
