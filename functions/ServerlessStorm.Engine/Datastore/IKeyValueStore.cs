namespace ServerlessStorm.Engine.Datastore;

/// <summary>A stored key-value pair. A secret's <see cref="Value"/> is ciphertext here; it is decrypted by <see cref="KeyValueService"/>.</summary>
public sealed record KeyValueRecord(string Scope, string Name, string Value, bool Secret, DateTimeOffset? ExpiresAt);

/// <summary>The datastore port: key-value pairs by scope (system, user).</summary>
public interface IKeyValueStore
{
    Task<KeyValueRecord?> GetAsync(string scope, string name, CancellationToken cancellationToken);

    Task SetAsync(KeyValueRecord record, CancellationToken cancellationToken);

    /// <summary>Deletes the pair; false when there was none.</summary>
    Task<bool> DeleteAsync(string scope, string name, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes the pair only if it is expired at <paramref name="now"/> as stored when deleted: a value set again
    /// meanwhile (with a new time to live, or none) stays.
    /// </summary>
    Task DeleteIfExpiredAsync(string scope, string name, DateTimeOffset now, CancellationToken cancellationToken);

    Task<IReadOnlyList<KeyValueRecord>> ListAsync(string scope, string? prefix, CancellationToken cancellationToken);
}

/// <summary>The datastore in memory, for tests and hosts without storage.</summary>
public sealed class InMemoryKeyValueStore : IKeyValueStore
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string, string), KeyValueRecord> _pairs = new();

    public Task<KeyValueRecord?> GetAsync(string scope, string name, CancellationToken cancellationToken) =>
        Task.FromResult(_pairs.GetValueOrDefault((scope, name)));

    public Task SetAsync(KeyValueRecord record, CancellationToken cancellationToken)
    {
        _pairs[(record.Scope, record.Name)] = record;
        return Task.CompletedTask;
    }

    public Task<bool> DeleteAsync(string scope, string name, CancellationToken cancellationToken) =>
        Task.FromResult(_pairs.TryRemove((scope, name), out _));

    public Task DeleteIfExpiredAsync(string scope, string name, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_pairs.TryGetValue((scope, name), out var record) && record.ExpiresAt is { } expires && expires <= now)
        {
            _pairs.TryRemove(KeyValuePair.Create((scope, name), record)); // only that very record
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<KeyValueRecord>> ListAsync(string scope, string? prefix, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<KeyValueRecord>>([.. _pairs.Values
            .Where(p => p.Scope == scope && (prefix is null || p.Name.StartsWith(prefix, StringComparison.Ordinal)))
            .OrderBy(p => p.Name, StringComparer.Ordinal)]);
}
