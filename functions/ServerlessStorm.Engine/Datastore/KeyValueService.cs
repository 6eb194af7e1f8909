using ServerlessStorm.Engine.Audit;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Datastore;

/// <summary>Datastore settings (configuration section <c>Storm:Datastore</c>).</summary>
public sealed class DatastoreOptions
{
    public const string Section = "Storm:Datastore";

    /// <summary>
    /// Base64 of a 32-byte AES key for secret values (from Key Vault in Azure). Without one, a key is derived from
    /// the machine name and working folder: good for the local stack, not for secrets that must move between hosts.
    /// </summary>
    public string? EncryptionKey { get; set; }
}

/// <summary>A datastore key or value was not acceptable; the message says why.</summary>
public sealed class KeyValueException(string message) : Exception(message);

/// <summary>
/// The datastore: scoped key-value pairs with time to live, secret values encrypted at rest with AES-GCM. Templates
/// read it through snapshots (<see cref="SnapshotAsync"/>); a secret in a snapshot is a sealed reference that only
/// <see cref="UnsealAsync"/> — called by the action executor just before the runner — turns back into the value, so
/// secrets never reach the audit, the bus or the logs.
/// </summary>
/// <remarks>
/// A reference is bound to the execution it was rendered for: its tag is a MAC of the execution id, scope and name
/// under the datastore key. Data from outside (a payload, a result) cannot forge one, and a reference copied out of
/// one execution opens nothing in another. The audit and API show references without their tag
/// (<see cref="MaskSealed"/>); re-runs, retries and workflow tasks carry them on with <see cref="Rebind"/>.
/// </remarks>
public sealed partial class KeyValueService
{
    public static readonly IReadOnlyList<string> Scopes = ["system", "user"];

    private readonly IKeyValueStore _store;
    private readonly TimeProvider _time;
    /// <summary>How every datastore reference in a rendered value begins.</summary>
    public const string ReferencePrefix = "\u27e6st2kv:";

    /// <summary>How every sealed value begins (its tag, a MAC of the key, follows).</summary>
    public const string SealedValuePrefix = "\u27e6st2secret:";

    private readonly byte[] _key;
    private readonly string _valueSealPrefix;

    public KeyValueService(IKeyValueStore store, IOptions<DatastoreOptions> options, TimeProvider time)
    {
        _store = store;
        _time = time;
        _key = options.Value.EncryptionKey is { Length: > 0 } configured
            ? Convert.FromBase64String(configured) is { Length: 32 } bytes ? bytes : throw new KeyValueException("Storm:Datastore:EncryptionKey must be base64 of 32 bytes")
            : SHA256.HashData(Encoding.UTF8.GetBytes($"serverlessstorm-local-datastore|{Environment.MachineName}|{Environment.CurrentDirectory}"));
        // A sealed value is found by this prefix; AES-GCM's tag is what stops a forged one.
        var tag = Convert.ToHexStringLower(HMACSHA256.HashData(_key, "seal"u8.ToArray()).AsSpan(0, 8));
        _valueSealPrefix = SealedValuePrefix + tag + ":";
    }

    public async Task SetAsync(string scope, string name, string value, bool secret, TimeSpan? ttl, CancellationToken cancellationToken)
    {
        Validate(scope, name);
        if (secret && value.Length < Audit.SecretMasker.MinimumLength)
        {
            throw new KeyValueException($"a secret must be at least {Audit.SecretMasker.MinimumLength} characters: a shorter one could not be masked in outputs without masking ordinary text (and is easily guessed)");
        }

        _knownSecrets = null;
        var stored = secret ? Encrypt(value) : value;
        await _store.SetAsync(new KeyValueRecord(scope, name, stored, secret, ttl is { } t ? _time.GetUtcNow() + t : null), cancellationToken);
    }

    /// <summary>The pair, or null when it is missing or expired; a secret's value stays encrypted unless <paramref name="decrypt"/>.</summary>
    public async Task<KeyValueRecord?> GetAsync(string scope, string name, bool decrypt, CancellationToken cancellationToken)
    {
        Validate(scope, name);
        var record = await _store.GetAsync(scope, name, cancellationToken);
        if (record is null)
        {
            return null;
        }

        var now = _time.GetUtcNow();
        if (record.ExpiresAt is { } expires && expires <= now)
        {
            await _store.DeleteIfExpiredAsync(scope, name, now, cancellationToken);
            return null;
        }

        return decrypt && record.Secret ? record with { Value = Decrypt(record.Value) } : record;
    }

    public Task<bool> DeleteAsync(string scope, string name, CancellationToken cancellationToken)
    {
        Validate(scope, name);
        _knownSecrets = null;
        return _store.DeleteAsync(scope, name, cancellationToken);
    }

    private static readonly TimeSpan KnownSecretsCacheTime = TimeSpan.FromSeconds(30);
    private volatile Tuple<IReadOnlyList<string>, DateTimeOffset>? _knownSecrets;

    /// <summary>
    /// Every secret value the datastore holds, in every scope: masked in every execution's output, not only in the
    /// one that read it (an action can leave a secret in a file another prints). Read again every 30 seconds, and at
    /// once after a change made here.
    /// </summary>
    public async Task<IReadOnlyList<string>> AllSecretValuesAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (_knownSecrets is { } known && known.Item2 > now)
        {
            return known.Item1;
        }

        var values = new List<string>();
        foreach (var scope in Scopes)
        {
            foreach (var record in await _store.ListAsync(scope, null, cancellationToken))
            {
                if (record.Secret)
                {
                    try
                    {
                        values.Add(Decrypt(record.Value));
                    }
                    catch (KeyValueException)
                    {
                        // Sealed under another key: nothing here can print it either.
                    }
                }
            }
        }

        IReadOnlyList<string> secrets = [.. values.Where(v => v.Length >= Audit.SecretMasker.MinimumLength).Distinct(StringComparer.Ordinal)];
        _knownSecrets = Tuple.Create(secrets, now + KnownSecretsCacheTime);
        return secrets;
    }

    public async Task<IReadOnlyList<KeyValueRecord>> ListAsync(string scope, string? prefix, CancellationToken cancellationToken)
    {
        Validate(scope, "x");
        var now = _time.GetUtcNow();
        return [.. (await _store.ListAsync(scope, prefix, cancellationToken)).Where(r => r.ExpiresAt is not { } e || e > now)];
    }

    /// <summary>
    /// The values of <paramref name="keys"/> for rendering the parameters of execution <paramref name="executionId"/>:
    /// plain values as they are, secrets as references that open only in that execution. Missing keys are absent
    /// (templates print them empty, as StackStorm does). <c>st2kv.user.NAME</c> is <paramref name="user"/>'s own key
    /// (stored as <c>USER:NAME</c> in the user scope, as StackStorm stores it).
    /// </summary>
    public async Task<IKeyValueLookup> SnapshotAsync(IEnumerable<(string Scope, string Name)> keys, string executionId, string? user, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (scope, name) in keys.Distinct())
        {
            var stored = scope == "user" ? $"{user}:{name}" : name;
            if (!Scopes.Contains(scope) || (scope == "user" && user is null) || await GetAsync(scope, stored, decrypt: false, cancellationToken) is not { } record)
            {
                continue;
            }

            values[$"{scope}.{name}"] = record.Secret ? Reference(executionId, scope, stored) : record.Value;
        }

        return new KeyValueSnapshot(values);
    }

    /// <summary>
    /// Replaces the references in <paramref name="text"/> that were rendered for execution <paramref name="executionId"/>
    /// with the decrypted values and returns those too, so the caller can mask them in whatever the action prints.
    /// Any other reference stays text.
    /// </summary>
    public async Task<(string Text, IReadOnlyList<string> Secrets)> UnsealAsync(string text, string executionId, CancellationToken cancellationToken)
    {
        var secrets = new List<string>();
        if (text.Contains(_valueSealPrefix, StringComparison.Ordinal))
        {
            // Sealed values inside a longer text (a workflow rendered a secret input into a string): open each.
            text = Regex.Replace(text, Regex.Escape(_valueSealPrefix) + @"[^\u27e7]+\u27e7", match =>
            {
                TryUnsealValue(match.Value, out var value);
                var plain = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "";
                if (plain.Length > 0)
                {
                    secrets.Add(plain);
                }

                return plain;
            });
        }

        if (!text.Contains(ReferencePrefix, StringComparison.Ordinal))
        {
            return (text, secrets);
        }

        var result = new StringBuilder();
        var position = 0;
        foreach (Match match in ReferencePattern().Matches(text))
        {
            var (scope, name) = (match.Groups["scope"].Value, match.Groups["name"].Value);
            if (!IsReferenceFor(match, executionId))
            {
                continue;
            }

            result.Append(text, position, match.Index - position);
            var record = await GetAsync(scope, name, decrypt: true, cancellationToken);
            var value = record?.Value ?? "";
            if (value.Length > 0)
            {
                secrets.Add(value);
            }

            result.Append(value);
            position = match.Index + match.Length;
        }

        result.Append(text, position, text.Length - position);
        return (result.ToString(), secrets);
    }

    /// <summary>
    /// <paramref name="node"/> with the references rendered for execution <paramref name="fromExecutionId"/> made
    /// references for <paramref name="toExecutionId"/>: a re-run, a retry or a workflow's task carries them on.
    /// </summary>
    public JsonNode? Rebind(JsonNode? node, string fromExecutionId, string toExecutionId) => node switch
    {
        JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, Rebind(p.Value, fromExecutionId, toExecutionId)))),
        JsonArray array => new JsonArray([.. array.Select(i => Rebind(i, fromExecutionId, toExecutionId))]),
        JsonValue v when v.TryGetValue<string>(out var text) && text.Contains(ReferencePrefix, StringComparison.Ordinal) =>
            JsonValue.Create(ReferencePattern().Replace(text, match => IsReferenceFor(match, fromExecutionId)
                ? Reference(toExecutionId, match.Groups["scope"].Value, match.Groups["name"].Value)
                : match.Value)),
        _ => node?.DeepClone(),
    };

    private string Reference(string executionId, string scope, string name) => $"{ReferencePrefix}{ReferenceTag(executionId, scope, name)}:{scope}:{name}\u27e7";

    private string ReferenceTag(string executionId, string scope, string name) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes($"st2kv|{executionId}|{scope}|{name}")).AsSpan(0, 16));

    private bool IsReferenceFor(Match match, string executionId) =>
        CryptographicOperations.FixedTimeEquals(
            Encoding.ASCII.GetBytes(match.Groups["tag"].Value),
            Encoding.ASCII.GetBytes(ReferenceTag(executionId, match.Groups["scope"].Value, match.Groups["name"].Value)));

    [GeneratedRegex(@"\u27e6st2kv:(?<tag>[0-9a-f]{32}):(?<scope>system|user):(?<name>[^\u27e7]+)\u27e7")]
    private static partial Regex ReferencePattern();

    /// <summary>
    /// Seals a secret parameter's value for the trip over the bus: the message carries ciphertext, and only
    /// <see cref="TryUnsealValue"/> on the executor's side opens it.
    /// </summary>
    public string SealValue(JsonNode? value) => $"{_valueSealPrefix}{Encrypt(value?.ToJsonString() ?? "null")}\u27e7";

    /// <summary>
    /// <paramref name="node"/> as the audit and API show it: every sealed value, whole or inside a text, as
    /// <c>********</c>, and every datastore reference as the key it names (<c>⟦st2kv.system.NAME⟧</c>), without the tag.
    /// </summary>
    public JsonNode? MaskSealed(JsonNode? node) => node switch
    {
        JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, MaskSealed(p.Value)))),
        JsonArray array => new JsonArray([.. array.Select(MaskSealed)]),
        JsonValue v when v.TryGetValue<string>(out var text)
            && (text.Contains(_valueSealPrefix, StringComparison.Ordinal) || text.Contains(ReferencePrefix, StringComparison.Ordinal)) =>
            JsonValue.Create(ReferencePattern().Replace(
                Regex.Replace(text, Regex.Escape(_valueSealPrefix) + @"[^\u27e7]+\u27e7", SecretMasker.Mask),
                match => $"\u27e6st2kv.{match.Groups["scope"].Value}.{match.Groups["name"].Value}\u27e7")),
        _ => node?.DeepClone(),
    };

    public bool TryUnsealValue(string text, out JsonNode? value)
    {
        value = null;
        if (!text.StartsWith(_valueSealPrefix, StringComparison.Ordinal) || !text.EndsWith('\u27e7'))
        {
            return false;
        }

        value = JsonNode.Parse(Decrypt(text[_valueSealPrefix.Length..^1]));
        return true;
    }

    private string Encrypt(string plain)
    {
        var nonce = RandomNumberGenerator.GetBytes(AesGcm.NonceByteSizes.MaxSize);
        var plainBytes = Encoding.UTF8.GetBytes(plain);
        var cipher = new byte[plainBytes.Length];
        var tag = new byte[AesGcm.TagByteSizes.MaxSize];
        using var aes = new AesGcm(_key, tag.Length);
        aes.Encrypt(nonce, plainBytes, cipher, tag);
        return "aesgcm:" + Convert.ToBase64String([.. nonce, .. tag, .. cipher]);
    }

    private string Decrypt(string stored)
    {
        if (!stored.StartsWith("aesgcm:", StringComparison.Ordinal))
        {
            throw new KeyValueException("the stored secret is not in the expected format");
        }

        var bytes = Convert.FromBase64String(stored["aesgcm:".Length..]);
        var nonce = bytes.AsSpan(0, 12);
        var tag = bytes.AsSpan(12, 16);
        var cipher = bytes.AsSpan(28);
        var plain = new byte[cipher.Length];
        using var aes = new AesGcm(_key, tag.Length);
        try
        {
            aes.Decrypt(nonce, cipher, tag, plain);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new KeyValueException("a secret could not be decrypted: the datastore encryption key has changed");
        }

        return Encoding.UTF8.GetString(plain);
    }

    private static void Validate(string scope, string name)
    {
        if (!Scopes.Contains(scope))
        {
            throw new KeyValueException($"unknown scope '{scope}' (use system or user)");
        }

        if (!NamePattern().IsMatch(name))
        {
            throw new KeyValueException($"'{name}' is not a valid key name (letters, digits, '.', '_', '-' and ':', at most 200)");
        }
    }

    [GeneratedRegex(@"^[A-Za-z0-9._:\-]{1,200}$")]
    private static partial Regex NamePattern();
}
