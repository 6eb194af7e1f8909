using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Engine.Api;

public sealed partial class StormApi
{
    private static readonly string[] DeadLetterQueues = [StormQueues.TriggerInstances, StormQueues.Executions];

    /// <summary>GET /api/v1/deadletters?queue=&amp;limit=: what the bus gave up on, per queue, oldest first, with the reason.</summary>
    public async Task<ApiResponse> ListDeadLettersAsync(IReadOnlyDictionary<string, string?> query, CancellationToken cancellationToken)
    {
        if (DeadLetterQueuesFor(query.GetValueOrDefault("queue")) is not { } queues)
        {
            return ApiResponse.Fault(400, $"queue is one of {string.Join(", ", DeadLetterQueues)}");
        }

        var limit = 100;
        if (query.GetValueOrDefault("limit") is { } text && (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxListLimit))
        {
            return ApiResponse.Fault(400, $"limit is 1-{MaxListLimit}");
        }

        var letters = new JsonArray();
        foreach (var queue in queues)
        {
            foreach (var letter in await bus.ListDeadLettersAsync(queue, limit, cancellationToken))
            {
                letters.Add(new JsonObject
                {
                    ["queue"] = letter.Queue,
                    ["id"] = letter.MessageId,
                    ["reason"] = letter.Reason,
                    ["deliveries"] = letter.Deliveries,
                    ["dead_lettered_at"] = letter.DeadLetteredAt.ToString("O", CultureInfo.InvariantCulture),
                });
            }
        }

        return new ApiResponse(200, letters);
    }

    /// <summary>
    /// POST /api/v1/deadletters/replay with <c>{"id": "…"}</c> or <c>{"all": true}</c> (and optionally <c>"queue"</c>):
    /// puts them back on their queue. Work that finished meanwhile is not done again (every stage is idempotent on its ids).
    /// </summary>
    public async Task<ApiResponse> ReplayDeadLettersAsync(JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        var request = body as JsonObject;
        var id = request?["id"] is JsonValue v && v.TryGetValue<string>(out var text) && text.Length > 0 ? text : null;
        var all = request?["all"] is JsonValue a && a.TryGetValue<bool>(out var flag) && flag;
        if ((id is null) == !all)
        {
            return ApiResponse.Fault(400, "send {\"id\": \"<trigger instance or execution id>\"} or {\"all\": true}");
        }

        var queueText = request?["queue"] is JsonValue q && q.TryGetValue<string>(out var named) ? named : null;
        if (DeadLetterQueuesFor(queueText) is not { } queues)
        {
            return ApiResponse.Fault(400, $"queue is one of {string.Join(", ", DeadLetterQueues)}");
        }

        var replayed = new JsonObject();
        var total = 0;
        foreach (var queue in queues)
        {
            var count = await bus.ReplayDeadLettersAsync(queue, id, cancellationToken);
            replayed[queue] = count;
            total += count;
        }

        logger.DeadLettersReplayed(caller.User, total, id ?? "(all)");
        return id is not null && total == 0
            ? ApiResponse.Fault(404, $"no dead-lettered message has id '{id}'")
            : new ApiResponse(200, new JsonObject { ["replayed"] = total, ["queues"] = replayed });
    }

    private static string[]? DeadLetterQueuesFor(string? queue) =>
        string.IsNullOrEmpty(queue) ? DeadLetterQueues : DeadLetterQueues.Contains(queue, StringComparer.Ordinal) ? [queue] : null;
}
