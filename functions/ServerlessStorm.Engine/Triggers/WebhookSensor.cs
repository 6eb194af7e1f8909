using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Triggers;

public sealed class WebhookOptions
{
    /// <summary>Largest body accepted; larger ones get 413.</summary>
    public int MaxBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Headers whose value, when present, becomes the trigger-instance id (the sender's delivery id).</summary>
    public IList<string> DeliveryIdHeaders { get; } = ["X-Delivery-Id", "X-GitHub-Delivery", "X-Gitlab-Event-UUID", "Idempotency-Key"];
}

/// <summary>The answer to a webhook: an HTTP status and a JSON body that says what happened.</summary>
public sealed record WebhookOutcome(int StatusCode, JsonObject Body);

/// <summary>
/// The webhook sensor: turns <c>POST /api/v1/webhooks/{hook}</c> into a <c>core.st2.webhook</c> trigger instance
/// with StackStorm's payload (<c>headers</c>, <c>body</c>). Bad bodies are refused with the reason and recorded.
/// </summary>
public sealed class WebhookSensor(
    PackCatalog catalog,
    TriggerDispatcher dispatcher,
    IAuditStore audit,
    TimeProvider time,
    IOptions<WebhookOptions> options,
    ILogger<WebhookSensor> logger)
{
    public const string TraceTagHeader = "st2-trace-tag";

    /// <summary>
    /// StackStorm's generic webhook: its body names any trigger type and carries its payload
    /// (<c>{"trigger": "pack.type", "payload": {…}}</c>), which is checked against the type's payload_schema.
    /// </summary>
    public const string GenericHook = "st2";

    private static readonly HashSet<string> CredentialHeaderNames = new(
        ["St2-Api-Key", "X-Auth-Token", "Authorization", "Proxy-Authorization", "Cookie", "X-Gitlab-Token", "X-Functions-Key", "Ocp-Apim-Subscription-Key"],
        StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Whether a header carries the sender's (or a platform's) credentials: never part of the payload (rules, the
    /// audit and actions see everything else the sender sent).
    /// </summary>
    public static bool IsCredentialHeader(string name) => CredentialHeaderNames.Contains(name)
        || name.StartsWith("X-MS-TOKEN-", StringComparison.OrdinalIgnoreCase) || name.StartsWith("X-MS-CLIENT-PRINCIPAL", StringComparison.OrdinalIgnoreCase);

    /// <summary>Refused signed deliveries recorded per hook and minute; past it they are counted in the log only.</summary>
    public const int RecordedRefusalsPerMinute = 60;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (long Minute, int Count)> _refusals = new(StringComparer.Ordinal);

    private readonly WebhookOptions _options = options.Value;

    public async Task<WebhookOutcome> AcceptAsync(
        string hook,
        IEnumerable<KeyValuePair<string, string>> headers,
        ReadOnlyMemory<byte> body,
        CancellationToken cancellationToken,
        string? user = null,
        string? verifiedDeliveryId = null)
    {
        using var span = Traced(hook);
        return Describe(span, await AcceptUntracedAsync(hook.Trim('/'), headers, body, user, verifiedDeliveryId, cancellationToken));
    }

    private async Task<WebhookOutcome> AcceptUntracedAsync(string hook, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body,
        string? user, string? verifiedDeliveryId, CancellationToken cancellationToken)
    {
        var generic = hook == GenericHook;
        if (!generic && !catalog.HasWebhook(hook))
        {
            return Error(404, $"no enabled rule listens on webhook '{hook}'");
        }

        var headerObject = PayloadHeaders(headers);

        var now = time.GetUtcNow();
        var deliveryId = verifiedDeliveryId ?? _options.DeliveryIdHeaders.Select(h => Header(headerObject, h)).FirstOrDefault(v => !string.IsNullOrWhiteSpace(v));
        if (deliveryId is not null && !IsUsableId(deliveryId))
        {
            return await RejectAsync(hook, headerObject, body, 400, "the delivery id header must be 1-200 printable characters without / \\ # ?", now, user, cancellationToken);
        }

        if (body.Length > _options.MaxBodyBytes)
        {
            return await RejectAsync(hook, headerObject, body, 413, $"the body is {body.Length} bytes; the limit is {_options.MaxBodyBytes}", now, user, cancellationToken);
        }

        JsonNode? parsed;
        try
        {
            parsed = IsForm(Header(headerObject, "Content-Type")) ? ParseForm(body.Span)
                : body.Length == 0 ? throw new JsonException("the body is empty; send a JSON document") : JsonNode.Parse(body.Span);
        }
        catch (JsonException ex)
        {
            return await RejectAsync(hook, headerObject, body, 400, $"the body is not valid JSON: {ex.Message}", now, user, cancellationToken);
        }

        var id = deliveryId ?? StormIds.New(now);
        // A redelivery is the same trigger instance: it keeps the first acceptance's time, from which its rows and its
        // executions' ids are derived.
        var occurredAt = deliveryId is null ? now : await audit.FirstAcceptedAsync(deliveryId, now, cancellationToken);
        static string? UsableTag(string? tag) => tag is { Length: > 0 and <= 200 } && IsUsableId(tag) ? tag : null;
        var traceTag = UsableTag(Header(headerObject, TraceTagHeader)) ?? id;
        TriggerInstance instance;
        if (generic)
        {
            var (type, payload, error) = GenericTrigger(parsed);
            if (error is not null)
            {
                return await RejectAsync(hook, headerObject, body, 400, error, now, user, cancellationToken);
            }

            traceTag = UsableTag((parsed?["trace_tag"] as JsonValue)?.TryGetValue<string>(out var given) == true ? given : null) ?? traceTag;
            // Empty trigger parameters, as StackStorm's type ref means: only rules on the type without parameters match.
            instance = new TriggerInstance(id, type!, [], payload!, occurredAt, traceTag, user);
        }
        else
        {
            instance = new TriggerInstance(id, CoreTriggers.Webhook, new JsonObject { ["url"] = hook },
                new JsonObject { ["headers"] = headerObject, ["body"] = parsed }, occurredAt, traceTag, user);
        }

        await dispatcher.DispatchAsync(instance, cancellationToken);
        logger.WebhookAccepted(hook, id, traceTag);
        return new WebhookOutcome(202, new JsonObject { ["trigger_instance_id"] = id, ["trace_tag"] = traceTag });
    }

    // The trigger type and payload a generic webhook's body names, or why they cannot be dispatched, as StackStorm
    // validates a trigger payload before dispatching it.
    private (string? Type, JsonObject? Payload, string? Error) GenericTrigger(JsonNode? body)
    {
        if (body is not JsonObject request || request["trigger"] is not JsonValue typeValue || !typeValue.TryGetValue<string>(out var type) || type.Length == 0)
        {
            return (null, null, "the st2 webhook's body names the trigger type in \"trigger\" and its payload in \"payload\"");
        }

        var (payload, error) = TriggerPayloads.Check(catalog, type, request["payload"]);
        return error is null ? (type, payload, null) : (null, null, error);
    }

    /// <summary>
    /// Refuses a delivery whose signature failed: recorded as rejected with the reason and the body's size and hash
    /// (not the body: anybody can send these), at most <see cref="RecordedRefusalsPerMinute"/> a minute per hook.
    /// </summary>
    public async Task<WebhookOutcome> RefuseAsync(string hook, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, int status, string reason, CancellationToken cancellationToken)
    {
        using var span = Traced(hook);
        return Describe(span, await RefuseUntracedAsync(hook.Trim('/'), headers, body, status, reason, cancellationToken));
    }

    private async Task<WebhookOutcome> RefuseUntracedAsync(string hook, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, int status, string reason, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var minute = now.ToUnixTimeSeconds() / 60;
        var (_, count) = _refusals.AddOrUpdate(hook, _ => (minute, 1), (_, seen) => seen.Minute == minute ? (minute, seen.Count + 1) : (minute, 1));
        if (count > RecordedRefusalsPerMinute)
        {
            if (count == RecordedRefusalsPerMinute + 1)
            {
                logger.WebhookRefusalsNotRecorded(hook, RecordedRefusalsPerMinute);
            }

            return Error(status, reason);
        }

        var payload = new JsonObject
        {
            ["headers"] = PayloadHeaders(headers),
            ["body_bytes"] = body.Length,
            ["body_sha256"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body.Span)),
        };
        return await RecordRejectionAsync(hook, payload, status, reason, now, null, cancellationToken);
    }

    private Task<WebhookOutcome> RejectAsync(string hook, JsonObject headers, ReadOnlyMemory<byte> body, int status, string reason, DateTimeOffset now, string? user, CancellationToken cancellationToken)
    {
        const int keep = 4096;
        var text = Encoding.UTF8.GetString(body.Span[..Math.Min(body.Length, keep)]);
        var payload = new JsonObject { ["headers"] = headers.DeepClone(), ["body_text"] = text, ["body_bytes"] = body.Length };
        return RecordRejectionAsync(hook, payload, status, reason, now, user, cancellationToken);
    }

    private async Task<WebhookOutcome> RecordRejectionAsync(string hook, JsonObject payload, int status, string reason, DateTimeOffset now, string? user, CancellationToken cancellationToken)
    {
        var id = StormIds.New(now);
        await audit.RecordTriggerInstanceAsync(new TriggerInstanceRecord
        {
            Id = id,
            TriggerType = CoreTriggers.Webhook,
            TriggerParameters = new JsonObject { ["url"] = hook },
            Payload = payload,
            OccurredAt = now,
            TraceTag = id,
            Status = TriggerInstanceStatus.Rejected,
            Reason = reason,
            User = user,
        }, cancellationToken);
        logger.WebhookRejected(hook, status, reason, id);
        Diagnostics.StormMetrics.TriggerRejected(CoreTriggers.Webhook, status);
        var outcome = Error(status, reason);
        outcome.Body["rejection_id"] = id;
        return outcome;
    }

    // The sender's headers as the payload shows them: repeated ones joined, credentials left out.
    private static JsonObject PayloadHeaders(IEnumerable<KeyValuePair<string, string>> headers)
    {
        var headerObject = new JsonObject();
        foreach (var (name, value) in headers.Where(h => !IsCredentialHeader(h.Key)))
        {
            headerObject[name] = headerObject[name] is JsonValue existing ? $"{existing.GetValue<string>()}, {value}" : value;
        }

        return headerObject;
    }

    private static bool IsForm(string? contentType) =>
        contentType?.Split(';')[0].Trim().Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>
    /// A form body as StackStorm reads one (Python's <c>parse_qs</c>): each field a list of its values, fields
    /// without a value left out — Slack's slash commands and interactive messages arrive this way.
    /// </summary>
    private static JsonObject ParseForm(ReadOnlySpan<byte> body)
    {
        var form = new JsonObject();
        foreach (var pair in Encoding.UTF8.GetString(body).Split('&'))
        {
            var parts = pair.Split('=', 2);
            if (parts.Length != 2 || parts[1].Length == 0)
            {
                continue;
            }

            static string Decode(string text) => Uri.UnescapeDataString(text.Replace('+', ' '));
            var name = Decode(parts[0]);
            if (form[name] is not JsonArray values)
            {
                form[name] = values = [];
            }

            values.Add(Decode(parts[1]));
        }

        return form;
    }

    private static System.Diagnostics.Activity? Traced(string hook) =>
        Diagnostics.StormTracing.Source.StartActivity(Diagnostics.StormTracing.WebhookAccept)?.SetTag(Diagnostics.StormTracing.Webhook, hook.Trim('/'));

    // The span says what the sender was answered: accepted with the ids to follow, or refused with the reason.
    private static WebhookOutcome Describe(System.Diagnostics.Activity? span, WebhookOutcome outcome)
    {
        if (span is not null)
        {
            span.SetTag("http.response.status_code", outcome.StatusCode);
            span.SetTag(Diagnostics.StormTracing.TriggerInstanceId, (outcome.Body["trigger_instance_id"] ?? outcome.Body["rejection_id"])?.GetValue<string>());
            span.SetTag(Diagnostics.StormTracing.TraceTag, outcome.Body["trace_tag"]?.GetValue<string>());
            if (outcome.StatusCode >= 400)
            {
                Diagnostics.StormTracing.Fail(span, outcome.Body["faultstring"]?.GetValue<string>() ?? $"refused with {outcome.StatusCode}");
            }
        }

        return outcome;
    }

    private static WebhookOutcome Error(int status, string reason) => new(status, new JsonObject { ["faultstring"] = reason });

    private static string? Header(JsonObject headers, string name) =>
        headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value?.GetValue<string>();

    // Ids become Table Storage keys, which cannot hold these characters.
    private static bool IsUsableId(string id) =>
        id.Length is > 0 and <= 200 && !id.Any(c => char.IsControl(c) || c is '/' or '\\' or '#' or '?');
}
