using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Engine.Api;

public sealed partial class StormApi
{
    /// <summary>How long one purge request works before it answers; the caller asks again while <c>more</c> is true.</summary>
    public static readonly TimeSpan PurgeRequestBudget = TimeSpan.FromSeconds(20);

    /// <summary>
    /// POST /api/v1/audit/purge with <c>{"before": "YYYY-MM-DD"}</c>: deletes the audit's whole UTC days before that date,
    /// oldest first, keeping executions that have not finished. It works for about <see cref="PurgeRequestBudget"/> and
    /// answers what it deleted, with <c>"more": true</c> when days are left for the next request, which sends
    /// <c>"after"</c>: the last day this one purged.
    /// </summary>
    public async Task<ApiResponse> PurgeAuditAsync(JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        if ((body as JsonObject)?["before"] is not JsonValue value || !value.TryGetValue<string>(out var text)
            || !DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var before))
        {
            return ApiResponse.Fault(400, "send {\"before\": \"YYYY-MM-DD\"}: the audit's days before that UTC date are purged");
        }

        DateOnly? after = null;
        if ((body as JsonObject)?["after"] is { } afterNode)
        {
            if (afterNode is not JsonValue a || !a.TryGetValue<string>(out var afterText)
                || !DateOnly.TryParseExact(afterText, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var afterDay))
            {
                return ApiResponse.Fault(400, "after is a date (YYYY-MM-DD): the last day an earlier purge request deleted");
            }

            after = afterDay;
        }

        if (before > retention.Today)
        {
            return ApiResponse.Fault(400, $"before is {text}, in the future: the audit is purged by whole past days, up to today ({retention.Today:yyyy-MM-dd}) at most");
        }

        var summary = await retention.PurgeAsync(before, PurgeRequestBudget, progress: null, cancellationToken, after);
        logger.AuditPurgeRequested(caller.User, text, summary.Days.Count, summary.Executions, summary.More);
        return new ApiResponse(200, new JsonObject
        {
            ["before"] = text,
            ["days"] = new JsonArray([.. summary.Days.Select(d => (JsonNode)d.Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture))]),
            ["trigger_instances"] = summary.TriggerInstances,
            ["rule_enforcements"] = summary.RuleEnforcements,
            ["executions"] = summary.Executions,
            ["payloads"] = summary.Payloads,
            ["output_rows"] = summary.OutputRows,
            ["days_deleted_whole"] = summary.DaysDeletedWhole,
            ["kept_executions"] = summary.KeptExecutions,
            ["more"] = summary.More,
        });
    }
}
