using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Datastore;

namespace ServerlessStorm.Azure.Datastore;

/// <summary>The datastore in Table Storage: table <c>{prefix}KeyValues</c>, PartitionKey = scope, RowKey = name.</summary>
public sealed class TableKeyValueStore : IKeyValueStore
{
    private readonly TableClient _table;
    private readonly Lazy<Task> _created;

    public TableKeyValueStore(IOptions<AzureStorageOptions> options)
    {
        _table = new StorageClients(options.Value).Tables.GetTableClient(options.Value.Names.KeyValuesTable);
        _created = new(() => _table.CreateIfNotExistsAsync());
    }

    public async Task<KeyValueRecord?> GetAsync(string scope, string name, CancellationToken cancellationToken)
    {
        await _created.Value;
        var response = await _table.GetEntityIfExistsAsync<TableEntity>(scope, name, cancellationToken: cancellationToken);
        return response.HasValue ? FromEntity(response.Value!) : null;
    }

    public async Task SetAsync(KeyValueRecord record, CancellationToken cancellationToken)
    {
        await _created.Value;
        await _table.UpsertEntityAsync(new TableEntity(record.Scope, record.Name)
        {
            ["Value"] = record.Value,
            ["Secret"] = record.Secret,
            ["ExpiresAt"] = record.ExpiresAt,
        }, TableUpdateMode.Replace, cancellationToken);
    }

    public async Task<bool> DeleteAsync(string scope, string name, CancellationToken cancellationToken)
    {
        await _created.Value;
        // The SDK treats deleting a missing entity as success, so ask first to tell the caller which it was.
        var existing = await _table.GetEntityIfExistsAsync<TableEntity>(scope, name, ["RowKey"], cancellationToken);
        if (!existing.HasValue)
        {
            return false;
        }

        await _table.DeleteEntityAsync(scope, name, ETag.All, cancellationToken);
        return true;
    }

    public async Task DeleteIfExpiredAsync(string scope, string name, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await _created.Value;
        var existing = await _table.GetEntityIfExistsAsync<TableEntity>(scope, name, cancellationToken: cancellationToken);
        if (existing.HasValue && existing.Value!.GetDateTimeOffset("ExpiresAt") is { } expires && expires <= now)
        {
            try
            {
                await _table.DeleteEntityAsync(scope, name, existing.Value.ETag, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status is 404 or 412)
            {
                // Deleted, or set again, since it was read: either way it is not the expired pair any more.
            }
        }
    }

    public async Task<IReadOnlyList<KeyValueRecord>> ListAsync(string scope, string? prefix, CancellationToken cancellationToken)
    {
        await _created.Value;
        var filter = prefix is null
            ? TableClient.CreateQueryFilter($"PartitionKey eq {scope}")
            : TableClient.CreateQueryFilter($"PartitionKey eq {scope} and RowKey ge {prefix} and RowKey lt {prefix + "\uffff"}");
        var records = new List<KeyValueRecord>();
        await foreach (var entity in _table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            records.Add(FromEntity(entity));
        }

        return records;
    }

    private static KeyValueRecord FromEntity(TableEntity e) =>
        new(e.PartitionKey, e.RowKey, e.GetString("Value") ?? "", e.GetBoolean("Secret") ?? false, e.GetDateTimeOffset("ExpiresAt"));
}
