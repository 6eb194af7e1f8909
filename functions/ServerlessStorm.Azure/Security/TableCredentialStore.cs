using System.Text.Json.Nodes;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Azure.Security;

/// <summary>
/// API keys and tokens in Table Storage: table <c>{prefix}Credentials</c>, PartitionKey = kind, RowKey = the SHA-256
/// of the secret, so a request's credential is one point read and the table holds no secret.
/// </summary>
public sealed class TableCredentialStore : ICredentialStore
{
    private readonly TableClient _table;
    private readonly Lazy<Task> _created;

    public TableCredentialStore(IOptions<AzureStorageOptions> options)
    {
        _table = new StorageClients(options.Value).Tables.GetTableClient(options.Value.Names.CredentialsTable);
        _created = new(() => _table.CreateIfNotExistsAsync());
    }

    public async Task<bool> AddAsync(CredentialRecord record, CancellationToken cancellationToken)
    {
        await _created.Value;
        try
        {
            await _table.AddEntityAsync(ToEntity(record), cancellationToken);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }
    }

    public async Task<CredentialRecord?> FindAsync(string kind, string hash, CancellationToken cancellationToken)
    {
        await _created.Value;
        var response = await _table.GetEntityIfExistsAsync<TableEntity>(kind, hash, cancellationToken: cancellationToken);
        return response.HasValue ? FromEntity(response.Value!) : null;
    }

    public async Task<IReadOnlyList<CredentialRecord>> ListAsync(string kind, CancellationToken cancellationToken)
    {
        await _created.Value;
        var records = new List<CredentialRecord>();
        await foreach (var entity in _table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {kind}"), cancellationToken: cancellationToken))
        {
            records.Add(FromEntity(entity));
        }

        return [.. records.OrderBy(r => r.CreatedAt).ThenBy(r => r.Id, StringComparer.Ordinal)];
    }

    public async Task<bool> UpdateAsync(CredentialRecord record, CancellationToken cancellationToken)
    {
        await _created.Value;
        try
        {
            await _table.UpdateEntityAsync(ToEntity(record), ETag.All, TableUpdateMode.Replace, cancellationToken);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return false;
        }
    }

    public async Task<bool> DeleteAsync(string kind, string hash, CancellationToken cancellationToken)
    {
        await _created.Value;
        // The SDK treats deleting a missing entity as success, so ask first to tell the caller which it was.
        var existing = await _table.GetEntityIfExistsAsync<TableEntity>(kind, hash, ["RowKey"], cancellationToken);
        if (!existing.HasValue)
        {
            return false;
        }

        await _table.DeleteEntityAsync(kind, hash, ETag.All, cancellationToken);
        return true;
    }

    private static TableEntity ToEntity(CredentialRecord r) => new(r.Kind, r.Hash)
    {
        ["Id"] = r.Id,
        ["User"] = r.User,
        ["Enabled"] = r.Enabled,
        ["CreatedAt"] = r.CreatedAt,
        ["ExpiresAt"] = r.ExpiresAt,
        ["Metadata"] = r.Metadata.ToJsonString(),
    };

    private static CredentialRecord FromEntity(TableEntity e) => new()
    {
        Kind = e.PartitionKey,
        Hash = e.RowKey,
        Id = e.GetString("Id") ?? "",
        User = e.GetString("User") ?? "",
        Enabled = e.GetBoolean("Enabled") ?? false,
        CreatedAt = e.GetDateTimeOffset("CreatedAt") ?? DateTimeOffset.MinValue,
        ExpiresAt = e.GetDateTimeOffset("ExpiresAt"),
        Metadata = e.GetString("Metadata") is { Length: > 0 } json && JsonNode.Parse(json) is JsonObject o ? o : [],
    };
}
