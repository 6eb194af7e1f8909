using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Triggers;

/// <summary>
/// One occurrence of a trigger. <see cref="Id"/> is stable for the occurrence (the webhook delivery id where the
/// sender gives one), so every hop can be delivered twice without doing the work twice. <see cref="User"/> is who
/// sent it (the webhook caller), for the audit.
/// </summary>
public sealed record TriggerInstance(
    string Id,
    string TriggerType,
    JsonObject? TriggerParameters,
    JsonNode? Payload,
    DateTimeOffset OccurredAt,
    string TraceTag,
    string? User = null)
{
    /// <summary>The trace it belongs to (the sender's span), when it came over the bus with one.</summary>
    public Diagnostics.TraceContext? Trace { get; init; }
}

/// <summary>The trigger types of the core pack.</summary>
public static class CoreTriggers
{
    public const string Webhook = "core.st2.webhook";
    public const string IntervalTimer = "core.st2.IntervalTimer";
    public const string CronTimer = "core.st2.CronTimer";
    public const string DateTimer = "core.st2.DateTimer";
    public const string ActionTrigger = "core.st2.generic.actiontrigger";
    public const string NotifyTrigger = "core.st2.generic.notifytrigger";
    public const string Inquiry = "core.st2.generic.inquiry";

    public static readonly IReadOnlyList<string> Timers = [IntervalTimer, CronTimer, DateTimer];
}

/// <summary>StackStorm's trigger-instance statuses, plus <c>rejected</c> for input refused at the door.</summary>
public static class TriggerInstanceStatus
{
    public const string Pending = "pending";
    public const string Processing = "processing";
    public const string Processed = "processed";
    public const string ProcessingFailed = "processing_failed";
    public const string Rejected = "rejected";
}
