using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Engine.Audit;

/// <summary>A trigger instance as the audit keeps it, including ones rejected at the door (with the reason).</summary>
public sealed class TriggerInstanceRecord
{
    public required string Id { get; init; }

    public required string TriggerType { get; init; }

    public JsonObject? TriggerParameters { get; init; }

    public JsonNode? Payload { get; init; }

    public required DateTimeOffset OccurredAt { get; init; }

    public required string TraceTag { get; init; }

    public required string Status { get; set; }

    public string? Reason { get; set; }

    /// <summary>Who sent it: the webhook caller's user, the system user for timers. Null in older records.</summary>
    public string? User { get; init; }
}

/// <summary>
/// Which rule matched which trigger instance, the execution it caused (run as <see cref="User"/>, StackStorm's system
/// user), or why enforcing it failed. <see cref="TriggerInstanceOccurredAt"/> files it beside its trigger instance, so
/// that both leave the audit with the trigger instance's day (<see cref="EnforcedAt"/> when it is not known).
/// </summary>
public sealed record RuleEnforcementRecord(
    string TriggerInstanceId,
    string RuleRef,
    string? ExecutionId,
    string Status,
    string? FailureReason,
    DateTimeOffset EnforcedAt,
    string TraceTag,
    string? User = null,
    DateTimeOffset? TriggerInstanceOccurredAt = null)
{
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
}

/// <summary>A filter for the audit's list queries. Times bound the record's own time (occurred or started).</summary>
public sealed record AuditQuery(string? Status = null, DateTimeOffset? From = null, DateTimeOffset? To = null, int Limit = 50)
{
    /// <summary>How far back a query without <see cref="From"/> looks.</summary>
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromDays(7);

    public (DateTimeOffset From, DateTimeOffset To) Window(DateTimeOffset now)
    {
        var to = To ?? now;
        return (From ?? to - DefaultWindow, to);
    }
}

/// <summary>Everything the audit holds for one trace tag, from the event to the last execution.</summary>
public sealed record AuditTrace(
    string TraceTag,
    IReadOnlyList<TriggerInstanceRecord> TriggerInstances,
    IReadOnlyList<RuleEnforcementRecord> RuleEnforcements,
    IReadOnlyList<ExecutionRecord> Executions);
