using ServerlessStorm.Engine.Audit;
using System.Security.Cryptography;
using System.Text;
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
public sealed partial class KeyValueService
{
    public static readonly IReadOnlyList<string> Scopes = ["system", "user"];

    private readonly IKeyValueStore _store;
    private readonly TimeProvider _time;
    private readonly byte[] _key;
    private readonly string _sealPrefix;
    private readonly string _valueSealPrefix;

    public KeyValueService(IKeyValueStore store, IOptions<DatastoreOptions> options, TimeProvider time)
    {
        _store = store;
        _time = time;
        _key = options.Value.EncryptionKey is { Length: > 0 } configured
            ? Convert.FromBase64String(configured) is { Length: 32 } bytes ? bytes : throw new KeyValueException("Storm:Datastore:EncryptionKey must be base64 of 32 bytes")
            : SHA256.HashData(Encoding.UTF8.GetBytes($"serverlessstorm-local-datastore|{Environment.MachineName}|{Environment.CurrentDirectory}"));
        // The seal carries a tag derived from the key, so data from outside (a payload) cannot forge one.
        var tag = Convert.ToHexStringLower(HMACSHA256.HashData(_key, "seal"u8.ToArray()).AsSpan(0, 8));
        _sealPrefix = "\u27e6st2kv:" + tag + ":";
        _valueSealPrefix = "\u27e6st2secret:" + tag + ":";
    }

    public async Task SetAsync(string scope, string name, string value, bool secret, TimeSpan? ttl, CancellationToken cancellationToken)
    {
        Validate(scope, name);
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

        if (record.ExpiresAt is { } expires && expires <= _time.GetUtcNow())
        {
            await _store.DeleteAsync(scope, name, cancellationToken);
            return null;
        }

        return decrypt && record.Secret ? record with { Value = Decrypt(record.Value) } : record;
    }

    public Task<bool> DeleteAsync(string scope, string name, CancellationToken cancellationToken)
    {
        Validate(scope, name);
        return _store.DeleteAsync(scope, name, cancellationToken);
    }

    public async Task<IReadOnlyList<KeyValueRecord>> ListAsync(string scope, string? prefix, CancellationToken cancellationToken)
    {
        Validate(scope, "x");
        var now = _time.GetUtcNow();
        return [.. (await _store.ListAsync(scope, prefix, cancellationToken)).Where(r => r.ExpiresAt is not { } e || e > now)];
    }

    /// <summary>
    /// The values of <paramref name="keys"/> for a render: plain values as they are, secrets as sealed references.
    /// Missing keys are absent (templates print them empty, as StackStorm does).
    /// </summary>
    public async Task<IKeyValueLookup> SnapshotAsync(IEnumerable<(string Scope, string Name)> keys, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (scope, name) in keys.Distinct())
        {
            if (!Scopes.Contains(scope) || await GetAsync(scope, name, decrypt: false, cancellationToken) is not { } record)
            {
                continue;
            }

            values[$"{scope}.{name}"] = record.Secret ? $"{_sealPrefix}{scope}:{name}\u27e7" : record.Value;
        }

        return new KeyValueSnapshot(values);
    }

    /// <summary>
    /// Replaces the sealed secret references in <paramref name="text"/> with the decrypted values and returns them
    /// too, so the caller can mask them in whatever the action prints.
    /// </summary>
    public async Task<(string Text, IReadOnlyList<string> Secrets)> UnsealAsync(string text, CancellationToken cancellationToken)
    {
        var secrets = new List<string>();
        if (text.Contains(_valueSealPrefix, StringComparison.Ordinal))
        {
            // Sealed values inside a longer text (a workflow rendered a secret input into a string): open each.
            text = Regex.Replace(text, Regex.Escape(_valueSealPrefix) + @"[^\u27e7]+\u27e7", match =>
            {
                TryUnsealValue(match.Value, out var value);
                var plain = value is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "";
                if (plain.Length > 0)
                {
                    secrets.Add(plain);
                }

                return plain;
            });
        }

        if (!text.Contains(_sealPrefix, StringComparison.Ordinal))
        {
            return (text, secrets);
        }

        var result = new StringBuilder();
        var position = 0;
        foreach (Match match in Regex.Matches(text, Regex.Escape(_sealPrefix) + @"(system|user):([^\u27e7]+)\u27e7"))
        {
            result.Append(text, position, match.Index - position);
            var record = await GetAsync(match.Groups[1].Value, match.Groups[2].Value, decrypt: true, cancellationToken);
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
    /// Seals a secret parameter's value for the trip over the bus: the message carries ciphertext, and only
    /// <see cref="TryUnsealValue"/> on the executor's side opens it.
    /// </summary>
    public string SealValue(System.Text.Json.Nodes.JsonNode? value) => $"{_valueSealPrefix}{Encrypt(value?.ToJsonString() ?? "null")}\u27e7";

    /// <summary>Every sealed value in <paramref name="node"/>, whole or inside a text, shown as <c>********</c>.</summary>
    public System.Text.Json.Nodes.JsonNode? MaskSealed(System.Text.Json.Nodes.JsonNode? node) => node switch
    {
        System.Text.Json.Nodes.JsonObject obj => new System.Text.Json.Nodes.JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, MaskSealed(p.Value)))),
        System.Text.Json.Nodes.JsonArray array => new System.Text.Json.Nodes.JsonArray([.. array.Select(MaskSealed)]),
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue<string>(out var text) && text.Contains(_valueSealPrefix, StringComparison.Ordinal) =>
            System.Text.Json.Nodes.JsonValue.Create(Regex.Replace(text, Regex.Escape(_valueSealPrefix) + @"[^\u27e7]+\u27e7", SecretMasker.Mask)),
        _ => node?.DeepClone(),
    };

    public bool TryUnsealValue(string text, out System.Text.Json.Nodes.JsonNode? value)
    {
        value = null;
        if (!text.StartsWith(_valueSealPrefix, StringComparison.Ordinal) || !text.EndsWith('\u27e7'))
        {
            return false;
        }

        value = System.Text.Json.Nodes.JsonNode.Parse(Decrypt(text[_valueSealPrefix.Length..^1]));
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
