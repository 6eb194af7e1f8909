using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Security;

/// <summary>The kinds of stored credential: StackStorm's API keys and its auth tokens.</summary>
public static class CredentialKind
{
    public const string ApiKey = "apikey";
    public const string Token = "token";
}

/// <summary>
/// A credential as stored: only the SHA-256 of its secret (<see cref="Hash"/>, lower-case hex), never the secret,
/// so a leaked table lets nobody in.
/// </summary>
public sealed record CredentialRecord
{
    public required string Kind { get; init; }

    /// <summary>StackStorm's id shape (24 hex digits), what the CLI and API name the credential by.</summary>
    public required string Id { get; init; }

    public required string Hash { get; init; }

    public required string User { get; init; }

    public bool Enabled { get; init; } = true;

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When a token stops working; null for API keys, which last until deleted or disabled.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    public JsonObject Metadata { get; init; } = [];
}

/// <summary>The credentials port: API keys and tokens, found by the hash of their secret.</summary>
public interface ICredentialStore
{
    /// <summary>Stores a new credential; false when one with the same hash exists already (nothing is changed).</summary>
    Task<bool> AddAsync(CredentialRecord record, CancellationToken cancellationToken);

    Task<CredentialRecord?> FindAsync(string kind, string hash, CancellationToken cancellationToken);

    /// <summary>Every credential of <paramref name="kind"/>, oldest first.</summary>
    Task<IReadOnlyList<CredentialRecord>> ListAsync(string kind, CancellationToken cancellationToken);

    /// <summary>Replaces the stored record with the same kind and hash; false when there is none.</summary>
    Task<bool> UpdateAsync(CredentialRecord record, CancellationToken cancellationToken);

    /// <summary>Deletes the credential; false when there was none.</summary>
    Task<bool> DeleteAsync(string kind, string hash, CancellationToken cancellationToken);
}

/// <summary>Credentials in memory, for tests and hosts without storage.</summary>
public sealed class InMemoryCredentialStore : ICredentialStore
{
    private readonly ConcurrentDictionary<(string Kind, string Hash), CredentialRecord> _records = new();

    public Task<bool> AddAsync(CredentialRecord record, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryAdd((record.Kind, record.Hash), Copy(record)));

    public Task<CredentialRecord?> FindAsync(string kind, string hash, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryGetValue((kind, hash), out var record) ? Copy(record) : null);

    public Task<IReadOnlyList<CredentialRecord>> ListAsync(string kind, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<CredentialRecord>>([.. _records.Values.Where(r => r.Kind == kind).OrderBy(r => r.CreatedAt).ThenBy(r => r.Id, StringComparer.Ordinal).Select(Copy)]);

    public Task<bool> UpdateAsync(CredentialRecord record, CancellationToken cancellationToken)
    {
        var key = (record.Kind, record.Hash);
        while (_records.TryGetValue(key, out var existing))
        {
            if (_records.TryUpdate(key, Copy(record), existing))
            {
                return Task.FromResult(true);
            }
        }

        return Task.FromResult(false);
    }

    public Task<bool> DeleteAsync(string kind, string hash, CancellationToken cancellationToken) =>
        Task.FromResult(_records.TryRemove((kind, hash), out _));

    // Callers get their own copy, as they would from a real store.
    private static CredentialRecord Copy(CredentialRecord record) => record with { Metadata = (JsonObject)record.Metadata.DeepClone() };
}
