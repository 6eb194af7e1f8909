using System.Globalization;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Azure.Audit;

/// <summary>Live output in Table Storage: <c>{prefix}ExecutionOutput</c>, PartitionKey = execution id, RowKey = sequence.</summary>
public sealed class TableExecutionOutputStore : IExecutionOutputStore
{
    // A Table property holds 32K characters; longer chunks are split.
    private const int MaxText = 30_000;
    private readonly TableClient _table;
    private readonly Lazy<Task> _created;

    public TableExecutionOutputStore(IOptions<AzureStorageOptions> options)
    {
        _table = new StorageClients(options.Value).Tables.GetTableClient(options.Value.Names.ExecutionOutputTable);
        _created = new(() => _table.CreateIfNotExistsAsync());
    }

    public async Task AppendAsync(string executionId, IReadOnlyList<OutputChunk> chunks, CancellationToken cancellationToken)
    {
        await _created.Value;
        // One partition per execution, so a batch is one entity-group transaction (up to 100 rows each).
        var rows = chunks.SelectMany(c => Enumerable.Range(0, Math.Max(1, (c.Text.Length + MaxText - 1) / MaxText)).Select(part =>
            new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(executionId, Key(c.Sequence, part))
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
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {executionId} and RowKey ge {Key(fromSequence, 0)}");
        var chunks = new List<OutputChunk>();
        await foreach (var row in _table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            var sequence = long.Parse(row.RowKey.AsSpan(0, 12), CultureInfo.InvariantCulture);
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

    private static string Key(long sequence, int part) =>
        sequence.ToString("D12", CultureInfo.InvariantCulture) + "-" + part.ToString("D4", CultureInfo.InvariantCulture);
}
