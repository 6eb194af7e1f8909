using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Security;

/// <summary>The outcome of checking a signed delivery: the id that makes it idempotent, or why it was refused.</summary>
public sealed record SignatureCheck(string? DeliveryId, string? Refusal)
{
    public bool Verified => Refusal is null;

    public static SignatureCheck Refused(string why) => new(null, why);
}

/// <summary>
/// Verifies signed webhook deliveries on their raw body, before anything parses it: GitHub's
/// <c>X-Hub-Signature-256</c>, Standard Webhooks (<c>webhook-id</c>/<c>webhook-timestamp</c>/<c>webhook-signature</c>,
/// several signatures and keys for rotation) and Slack's <c>X-Slack-Signature</c> v0. Secrets come from the
/// encrypted datastore (kept for a few seconds, so a delivery costs an HMAC, not a storage read); comparisons are
/// constant-time; timestamped schemes refuse deliveries outside the window.
/// </summary>
/// <remarks>
/// Written here rather than taken from the StandardWebhooks package: its 1.1.2 never checks the last signature of a
/// multi-signature header, which breaks key rotation. The schemes are a few lines of HMAC each.
/// </remarks>
public sealed class WebhookSignatures(KeyValueService datastore, TimeProvider time)
{
    public const string GitHub = "github";
    public const string StandardWebhooks = "standard-webhooks";
    public const string Slack = "slack";

    public static readonly IReadOnlyList<string> Schemes = [GitHub, StandardWebhooks, Slack];

    private static readonly TimeSpan SecretCacheTime = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, (byte[]? Secret, DateTimeOffset Until)> _secrets = new(StringComparer.Ordinal);

    public async Task<SignatureCheck> VerifyAsync(WebhookDefinition hook, ApiRequest request, CancellationToken cancellationToken)
    {
        var verify = hook.Verify!;
        var secrets = new List<byte[]>();
        foreach (var key in verify.SecretKeys)
        {
            if (await SecretAsync(key, verify.Scheme, cancellationToken) is { } secret)
            {
                secrets.Add(secret);
            }
        }

        if (secrets.Count == 0)
        {
            return SignatureCheck.Refused($"the hook's signing secret is not set (datastore key {string.Join(" or ", verify.SecretKeys)}, system scope)");
        }

        return verify.Scheme switch
        {
            GitHub => VerifyGitHub(request, secrets),
            StandardWebhooks => VerifyStandard(request, secrets, verify.Tolerance),
            _ => VerifySlack(request, secrets, verify.Tolerance),
        };
    }

    private static SignatureCheck VerifyGitHub(ApiRequest request, List<byte[]> secrets)
    {
        if (request.Header("X-Hub-Signature-256") is not { } header)
        {
            return SignatureCheck.Refused("missing X-Hub-Signature-256 (sha256=HMAC of the body)");
        }

        if (!header.StartsWith("sha256=", StringComparison.Ordinal) || !TryHex(header["sha256=".Length..], 32, out var signature))
        {
            return SignatureCheck.Refused("X-Hub-Signature-256 is not sha256= and 64 hex digits");
        }

        // GitHub signs the body only: its delivery headers are anybody's to change, so the signature stands for the
        // delivery id, and the same delivery replayed (or redelivered by GitHub) is the same trigger instance.
        return secrets.Any(s => CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(s, request.Body.Span), signature))
            ? new SignatureCheck("github-" + Convert.ToHexStringLower(signature)[..32], null)
            : SignatureCheck.Refused("X-Hub-Signature-256 does not match the body");
    }

    private SignatureCheck VerifyStandard(ApiRequest request, List<byte[]> secrets, TimeSpan tolerance)
    {
        var id = request.Header("webhook-id");
        var timestamp = request.Header("webhook-timestamp");
        var header = request.Header("webhook-signature");
        if (id is not { Length: > 0 } || timestamp is null || header is null)
        {
            return SignatureCheck.Refused("missing webhook-id, webhook-timestamp or webhook-signature");
        }

        if (TimestampRefusal(timestamp, tolerance) is { } refusal)
        {
            return SignatureCheck.Refused($"webhook-timestamp {refusal}");
        }

        // Signed content: "{id}.{timestamp}.{body}", HMAC-SHA256, each "v1,<base64>" in the header checked.
        var content = Prefixed($"{id}.{timestamp}.", request.Body);
        var expected = secrets.Select(s => HMACSHA256.HashData(s, content)).ToList();
        foreach (var entry in header.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = entry.Split(',', 2);
            if (parts.Length == 2 && parts[0] == "v1" && TryBase64(parts[1], out var signature)
                && expected.Any(e => CryptographicOperations.FixedTimeEquals(e, signature)))
            {
                return new SignatureCheck(id, null);
            }
        }

        return SignatureCheck.Refused("no v1 signature in webhook-signature matches");
    }

    private SignatureCheck VerifySlack(ApiRequest request, List<byte[]> secrets, TimeSpan tolerance)
    {
        var timestamp = request.Header("X-Slack-Request-Timestamp");
        var header = request.Header("X-Slack-Signature");
        if (timestamp is null || header is null)
        {
            return SignatureCheck.Refused("missing X-Slack-Signature or X-Slack-Request-Timestamp");
        }

        if (TimestampRefusal(timestamp, tolerance) is { } refusal)
        {
            return SignatureCheck.Refused($"X-Slack-Request-Timestamp {refusal}");
        }

        if (!header.StartsWith("v0=", StringComparison.Ordinal) || !TryHex(header["v0=".Length..], 32, out var signature))
        {
            return SignatureCheck.Refused("X-Slack-Signature is not v0= and 64 hex digits");
        }

        var content = Prefixed($"v0:{timestamp}:", request.Body);
        // Slack sends no delivery id: the signature stands for one, so the same delivery replayed is the same trigger instance.
        return secrets.Any(s => CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(s, content), signature))
            ? new SignatureCheck("slack-" + Convert.ToHexStringLower(signature)[..32], null)
            : SignatureCheck.Refused("X-Slack-Signature does not match the body");
    }

    private static byte[] Prefixed(string prefix, ReadOnlyMemory<byte> body)
    {
        var head = Encoding.UTF8.GetBytes(prefix);
        var content = new byte[head.Length + body.Length];
        head.CopyTo(content, 0);
        body.Span.CopyTo(content.AsSpan(head.Length));
        return content;
    }

    private string? TimestampRefusal(string timestamp, TimeSpan tolerance)
    {
        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds > 32_503_680_000)
        {
            return "is not Unix seconds";
        }

        var age = time.GetUtcNow() - DateTimeOffset.FromUnixTimeSeconds(seconds);
        return age.Duration() > tolerance ? $"is {(long)age.TotalSeconds} s from now, outside the {(long)tolerance.TotalSeconds} s window (a replay, or a clock off)" : null;
    }

    /// <summary>A secret's bytes: Standard Webhooks' <c>whsec_</c> base64 key decoded, the others' text as UTF-8.</summary>
    private async Task<byte[]?> SecretAsync(string key, string scheme, CancellationToken cancellationToken)
    {
        var cacheKey = scheme + "|" + key;
        var now = time.GetUtcNow();
        if (_secrets.TryGetValue(cacheKey, out var cached) && cached.Until > now)
        {
            return cached.Secret;
        }

        byte[]? secret = null;
        if (await datastore.GetAsync("system", key, decrypt: true, cancellationToken) is { Value.Length: > 0 } record)
        {
            var text = record.Value;
            secret = scheme != StandardWebhooks ? Encoding.UTF8.GetBytes(text)
                : TryBase64(text.StartsWith("whsec_", StringComparison.Ordinal) ? text["whsec_".Length..] : text, out var decoded) && decoded.Length > 0 ? decoded : null;
        }

        _secrets[cacheKey] = (secret, now + SecretCacheTime);
        return secret;
    }

    private static bool TryHex(string text, int bytes, out byte[] value)
    {
        value = [];
        if (text.Length != bytes * 2 || !text.All(char.IsAsciiHexDigit))
        {
            return false;
        }

        value = Convert.FromHexString(text);
        return true;
    }

    private static bool TryBase64(string text, out byte[] value)
    {
        var buffer = new byte[(text.Length * 3 / 4) + 3];
        if (Convert.TryFromBase64String(text, buffer, out var written))
        {
            value = buffer[..written];
            return true;
        }

        value = [];
        return false;
    }
}
