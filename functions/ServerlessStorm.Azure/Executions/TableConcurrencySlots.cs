using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Azure.Executions;

/// <summary>
/// Concurrency slots in Table Storage, shared by every host: <c>{prefix}ConcurrencySlots</c>, PartitionKey = the
/// policy's scope, RowKey = the slot number (0 to threshold-1), with the holder and its lease's end. A slot is taken
/// by inserting its row (or replacing an expired one under its ETag), so two hosts can never take the same slot.
/// </summary>
public sealed class TableConcurrencySlots : IConcurrencySlots
{
    private readonly TableClient _table;
    private readonly TimeProvider _time;
    private readonly Lazy<Task> _created;

    public TableConcurrencySlots(IOptions<AzureStorageOptions> options, TimeProvider time)
    {
        var settings = options.Value;
        _table = new StorageClients(settings).Tables.GetTableClient(settings.Names.ConcurrencySlotsTable);
        _time = time;
        _created = new(() => _table.CreateIfNotExistsAsync());
    }

    public async Task<bool> TryAcquireAsync(string scope, int threshold, string holder, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        await _created.Value;
        var rows = await ReadAsync(scope, cancellationToken);
        if (rows.Find(r => r.GetString("Holder") == holder) is { } mine)
        {
            return await TryWriteAsync(scope, mine.RowKey, holder, leaseUntil, mine.ETag, cancellationToken);
        }

        var now = _time.GetUtcNow();
        var live = rows.Count(r => r.GetDateTimeOffset("LeaseUntil") > now);
        if (live >= threshold)
        {
            return false;
        }

        // Free slots in a random order, so hosts racing for the last ones rarely collide on the same row.
        var free = Enumerable.Range(0, threshold).Select(SlotKey)
            .Select(key => (Key: key, Row: rows.Find(r => r.RowKey == key)))
            .Where(s => s.Row is null || s.Row.GetDateTimeOffset("LeaseUntil") <= now)
            .OrderBy(_ => Random.Shared.Next())
            .ToList();
        foreach (var (key, row) in free)
        {
            if (await TryWriteAsync(scope, key, holder, leaseUntil, row?.ETag, cancellationToken))
            {
                return true;
            }
        }

        return false;
    }

    public async Task ReleaseAsync(string scope, string holder, CancellationToken cancellationToken)
    {
        await _created.Value;
        foreach (var row in (await ReadAsync(scope, cancellationToken)).Where(r => r.GetString("Holder") == holder))
        {
            try
            {
                await _table.DeleteEntityAsync(row.PartitionKey, row.RowKey, row.ETag, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status is 404 or 412)
            {
                // Already gone, or taken over after the lease ran out.
            }
        }
    }

    private async Task<List<TableEntity>> ReadAsync(string scope, CancellationToken cancellationToken)
    {
        var rows = new List<TableEntity>();
        await foreach (var row in _table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {scope}"), cancellationToken: cancellationToken))
        {
            rows.Add(row);
        }

        return rows;
    }

    // Insert when the slot has no row; else replace it only as read (a host that got there first wins).
    private async Task<bool> TryWriteAsync(string scope, string key, string holder, DateTimeOffset leaseUntil, ETag? etag, CancellationToken cancellationToken)
    {
        var entity = new TableEntity(scope, key) { ["Holder"] = holder, ["LeaseUntil"] = leaseUntil };
        try
        {
            if (etag is { } current)
            {
                await _table.UpdateEntityAsync(entity, current, TableUpdateMode.Replace, cancellationToken);
            }
            else
            {
                await _table.AddEntityAsync(entity, cancellationToken);
            }

            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412 or 404)
        {
            return false;
        }
    }

    private static string SlotKey(int slot) => slot.ToString("D4", CultureInfo.InvariantCulture);
}
