using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;

namespace ServerlessStorm.Engine.Security;

/// <summary>Authentication settings (configuration section <c>Storm:Auth</c>).</summary>
public sealed class AuthOptions
{
    public const string Section = "Storm:Auth";

    /// <summary>
    /// Off only where a host allows it (<c>storm serve --no-auth</c> on a loopback address); every request then acts
    /// as <see cref="AdminUser"/>.
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The administrator: the user of the key <c>storm serve</c> creates on first start (StackStorm's st2admin).</summary>
    public string AdminUser { get; set; } = "st2admin";

    /// <summary>
    /// Who the actions that rules and timers start run as (StackStorm's <c>system_user</c>), so the audit tells them
    /// from a person's.
    /// </summary>
    public string SystemUser { get; set; } = "stanley";

    /// <summary>A token's time to live when the request names none (StackStorm's <c>auth.token_ttl</c>, one day).</summary>
    public TimeSpan TokenTtl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>The longest time to live a token may ask for.</summary>
    public TimeSpan MaxTokenTtl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// How long a verified credential is trusted without asking the store again: a disabled or deleted key stops
    /// working on every instance within this time.
    /// </summary>
    public TimeSpan CacheFor { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A credential whose <see cref="CacheFor"/> has run out is checked with the store again in the background while
    /// it goes on letting its holder in, for up to this long if the store fails or does not answer (so a storage
    /// outage does not stop webhooks from being accepted). A key disabled meanwhile stops working as soon as the
    /// store answers.
    /// </summary>
    public TimeSpan StaleFor { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The htpasswd file of users who may ask for a token (StackStorm's flat_file backend); none when unset.</summary>
    public string? HtpasswdFile { get; set; }
}

/// <summary>A credential request was not acceptable; the message says why.</summary>
public sealed class CredentialException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>
/// StackStorm's API keys and auth tokens: created with a random secret that is shown once, stored as its SHA-256
/// only, and verified by hashing what a request presents. Verified credentials are remembered for
/// <see cref="AuthOptions.CacheFor"/>, so a request costs a hash, not a storage round trip.
/// </summary>
public sealed class CredentialService(ICredentialStore store, IOptions<AuthOptions> options, TimeProvider time)
{
    private const int CacheLimit = 10_000;

    private readonly AuthOptions _options = options.Value;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Task<CredentialRecord?>> _lookups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (CredentialRecord Record, DateTimeOffset Until)> _verified = new(StringComparer.Ordinal);

    /// <summary>
    /// How a presented secret is stored and found. An API key's hash is StackStorm's (SHA-512 of a fixed salt and the
    /// key), so keys exported from st2 with their hashes (<c>st2 apikey list --show-secrets</c>) load here and keep
    /// working; a token's is its SHA-256 (st2 keeps tokens in the clear, which this does not).
    /// </summary>
    public static string Hash(string kind, string secret) => kind == CredentialKind.ApiKey
        ? Convert.ToHexStringLower(SHA512.HashData(Encoding.UTF8.GetBytes("saltnpepper" + secret)))
        : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>Whether <paramref name="hash"/> has the shape of a stored API key hash (128 lower-case hex digits).</summary>
    public static bool IsApiKeyHash(string hash) => hash.Length == 128 && hash.All(char.IsAsciiHexDigitLower);

    /// <summary>A new API key for <paramref name="user"/>; the returned key is the only copy there will ever be.</summary>
    public async Task<(CredentialRecord Record, string Key)> CreateApiKeyAsync(string user, JsonObject? metadata, CancellationToken cancellationToken)
    {
        CheckUser(user);
        // StackStorm's shape (86 letters and digits: base64 of a random SHA-256 hex digest), so tools that check keys take ours.
        var key = Convert.ToBase64String(Encoding.ASCII.GetBytes(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)))).TrimEnd('=');
        return (await AddApiKeyAsync(user, Hash(CredentialKind.ApiKey, key), metadata, enabled: true, cancellationToken), key);
    }

    /// <summary>
    /// The administrator's key for a host that keeps one (<c>storm serve</c> files it for the CLI): null when
    /// <paramref name="kept"/> still opens the API as the administrator, else a new key that replaces it.
    /// </summary>
    public async Task<(string User, string? NewKey)> AdminKeyAsync(string? kept, string createdBy, CancellationToken cancellationToken)
    {
        var admin = _options.AdminUser;
        if (kept is not null && await FindAsync(CredentialKind.ApiKey, kept, cancellationToken) is { } existing && IsUsable(existing) && existing.User == admin)
        {
            return (admin, null);
        }

        var (_, key) = await CreateApiKeyAsync(admin, new JsonObject { ["created_by"] = createdBy, ["purpose"] = "the administrator's key, kept by the host for its CLI" }, cancellationToken);
        return (admin, key);
    }

    /// <summary>
    /// Stores an API key known only by its hash, as <c>st2 apikey load</c> brings keys from another StackStorm: the
    /// key itself stays with whoever has it.
    /// </summary>
    public async Task<CredentialRecord> LoadApiKeyAsync(string user, string keyHash, JsonObject? metadata, bool enabled, CancellationToken cancellationToken)
    {
        CheckUser(user);
        if (!IsApiKeyHash(keyHash))
        {
            throw new CredentialException(400, "key_hash must be StackStorm's API key hash: 128 lower-case hex digits");
        }

        return await AddApiKeyAsync(user, keyHash, metadata, enabled, cancellationToken);
    }

    private async Task<CredentialRecord> AddApiKeyAsync(string user, string hash, JsonObject? metadata, bool enabled, CancellationToken cancellationToken)
    {
        var record = new CredentialRecord
        {
            Kind = CredentialKind.ApiKey,
            Id = StormIds.New(time.GetUtcNow()),
            Hash = hash,
            Enabled = enabled,
            User = user,
            CreatedAt = time.GetUtcNow(),
            Metadata = metadata ?? [],
        };
        if (!await store.AddAsync(record, cancellationToken))
        {
            throw new CredentialException(409, "an API key with that hash exists already");
        }

        return record;
    }

    /// <summary>A token for <paramref name="user"/> that lasts <paramref name="ttl"/> (the configured default when null).</summary>
    public async Task<(CredentialRecord Record, string Token)> IssueTokenAsync(string user, TimeSpan? ttl, CancellationToken cancellationToken)
    {
        CheckUser(user);
        var lifetime = ttl ?? _options.TokenTtl;
        if (lifetime <= TimeSpan.Zero)
        {
            throw new CredentialException(400, "ttl must be at least 1 second");
        }

        if (lifetime > _options.MaxTokenTtl)
        {
            throw new CredentialException(400, $"TTL specified {(long)lifetime.TotalSeconds} is greater than max allowed {(long)_options.MaxTokenTtl.TotalSeconds}.");
        }

        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var now = time.GetUtcNow();
        var record = new CredentialRecord
        {
            Kind = CredentialKind.Token,
            Id = StormIds.New(now),
            Hash = Hash(CredentialKind.Token, token),
            User = user,
            CreatedAt = now,
            ExpiresAt = now + lifetime,
        };
        if (!await store.AddAsync(record, cancellationToken))
        {
            throw new InvalidOperationException("a new token collided with a stored one");
        }

        return (record, token);
    }

    /// <summary>
    /// The credential of <paramref name="kind"/> whose secret is <paramref name="secret"/>, whatever its state (the
    /// caller tells a disabled key or an expired token from a good one), or null when there is none.
    /// </summary>
    public async Task<CredentialRecord?> FindAsync(string kind, string secret, CancellationToken cancellationToken)
    {
        if (secret.Length is 0 or > 512)
        {
            return null;
        }

        var hash = Hash(kind, secret);
        var now = time.GetUtcNow();
        var cacheKey = kind + ":" + hash;
        if (!_verified.TryGetValue(cacheKey, out var cached))
        {
            return await LookUpAsync(kind, hash, cacheKey, cancellationToken);
        }

        if (cached.Until > now)
        {
            return cached.Record;
        }

        if (now - cached.Until > _options.StaleFor)
        {
            return await LookUpAsync(kind, hash, cacheKey, cancellationToken);
        }

        // One look-up per credential at a time, in the background; until it answers, the last verdict stands.
        var started = false;
        var lookup = _lookups.GetOrAdd(cacheKey, _ =>
        {
            started = true;
            return LookUpAsync(kind, hash, cacheKey, CancellationToken.None);
        });
        if (started)
        {
            _ = lookup.ContinueWith(done => _lookups.TryRemove(KeyValuePair.Create(cacheKey, done)), TaskScheduler.Default);
        }

        return lookup.IsCompletedSuccessfully ? lookup.Result : cached.Record;
    }

    private async Task<CredentialRecord?> LookUpAsync(string kind, string hash, string cacheKey, CancellationToken cancellationToken)
    {
        var record = await store.FindAsync(kind, hash, cancellationToken);
        if (record is null)
        {
            _verified.TryRemove(cacheKey, out _);
            return null;
        }

        if (_verified.Count >= CacheLimit)
        {
            _verified.Clear();
        }

        _verified[cacheKey] = (record, time.GetUtcNow() + _options.CacheFor);
        return record;
    }

    /// <summary>Whether a found credential lets its holder in now: enabled, and not expired.</summary>
    public bool IsUsable(CredentialRecord record) => record.Enabled && (record.ExpiresAt is not { } expires || expires > time.GetUtcNow());

    public Task<IReadOnlyList<CredentialRecord>> ListApiKeysAsync(CancellationToken cancellationToken) =>
        store.ListAsync(CredentialKind.ApiKey, cancellationToken);

    /// <summary>The API key whose id (or, as st2 allows, whose key hash) is <paramref name="idOrHash"/>.</summary>
    public async Task<CredentialRecord?> GetApiKeyAsync(string idOrHash, CancellationToken cancellationToken) =>
        (await store.ListAsync(CredentialKind.ApiKey, cancellationToken)).FirstOrDefault(k => k.Id == idOrHash || k.Hash == idOrHash);

    /// <summary>Enables or disables an API key; null when there is none with that id.</summary>
    public async Task<CredentialRecord?> SetApiKeyEnabledAsync(string idOrHash, bool enabled, CancellationToken cancellationToken)
    {
        if (await GetApiKeyAsync(idOrHash, cancellationToken) is not { } record)
        {
            return null;
        }

        var updated = record with { Enabled = enabled };
        Forget(updated);
        return await store.UpdateAsync(updated, cancellationToken) ? updated : null;
    }

    public async Task<CredentialRecord?> DeleteApiKeyAsync(string idOrHash, CancellationToken cancellationToken)
    {
        if (await GetApiKeyAsync(idOrHash, cancellationToken) is not { } record)
        {
            return null;
        }

        Forget(record);
        return await store.DeleteAsync(CredentialKind.ApiKey, record.Hash, cancellationToken) ? record : null;
    }

    /// <summary>Ends a token before its time (st2's DELETE of a token, and logging out).</summary>
    public async Task<bool> RevokeTokenAsync(string token, CancellationToken cancellationToken)
    {
        var hash = Hash(CredentialKind.Token, token);
        _verified.TryRemove(CredentialKind.Token + ":" + hash, out _);
        return await store.DeleteAsync(CredentialKind.Token, hash, cancellationToken);
    }

    private void Forget(CredentialRecord record) => _verified.TryRemove(record.Kind + ":" + record.Hash, out _);

    private static void CheckUser(string user)
    {
        // ':' separates a user from a key name in the datastore's user scope, so no user name may hold one.
        if (string.IsNullOrWhiteSpace(user) || user.Length > 256 || user.Any(c => char.IsControl(c) || c == ':'))
        {
            throw new CredentialException(400, "the user name must be 1-256 characters without ':' or control characters");
        }
    }
}
