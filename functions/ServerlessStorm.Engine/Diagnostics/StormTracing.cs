using System.Diagnostics;

namespace ServerlessStorm.Engine.Diagnostics;

/// <summary>
/// The engine's traces (activity source <c>ServerlessStorm</c>): one trace per event, from the webhook (or timer) to
/// the last action it causes. The W3C trace context travels inside each bus message (the CloudEvent's
/// distributed-tracing extension, <c>traceparent</c>/<c>tracestate</c>), so every hop's span continues the trace
/// whatever the transport. Spans carry StackStorm's identifiers as attributes, never parameters or payloads.
/// </summary>
public static class StormTracing
{
    public const string SourceName = "ServerlessStorm";

    public static readonly ActivitySource Source = new(SourceName);

    // Span names.
    public const string WebhookAccept = "storm.webhook.accept";
    public const string TimerFire = "storm.timer.fire";
    public const string TriggerDispatch = "storm.trigger.dispatch";
    public const string RulesEvaluate = "storm.rules.evaluate";
    public const string RuleEnforce = "storm.rule.enforce";
    public const string ExecutionRequest = "storm.execution.request";
    public const string ExecutionQueueWait = "storm.execution.queue_wait";
    public const string ExecutionRun = "storm.execution.run";
    public const string WorkflowTask = "storm.workflow.task";
    public const string InquiryRespond = "storm.inquiry.respond";
    public const string InquiryExpire = "storm.inquiry.expire";
    public const string AuditWrite = "storm.audit.write";

    // Attribute names.
    public const string TraceTag = "storm.trace_tag";
    public const string Webhook = "storm.webhook";
    public const string TriggerType = "storm.trigger.type";
    public const string TriggerInstanceId = "storm.trigger_instance.id";
    public const string RuleRef = "storm.rule.ref";
    public const string ActionRef = "storm.action.ref";
    public const string ExecutionId = "storm.execution.id";
    public const string WorkflowTaskName = "storm.workflow.task.name";
    public const string AuditKind = "storm.audit.kind";
    public const string AuditRecordId = "storm.audit.record.id";
    public const string Status = "storm.status";
    public const string DeliveryCount = "messaging.message.delivery_count";

    /// <summary>The trace context of the span current now, for a message about to be sent.</summary>
    public static TraceContext? Current() =>
        Activity.Current is { IdFormat: ActivityIdFormat.W3C } current ? new TraceContext(current.Id!, current.TraceStateString) : null;

    /// <summary>Starts a span continuing <paramref name="parent"/> (a received message's context), or a new trace without one.</summary>
    public static Activity? Start(string name, ActivityKind kind, TraceContext? parent, DateTimeOffset startTime = default)
    {
        var context = parent is { } p && ActivityContext.TryParse(p.TraceParent, p.TraceState, isRemote: true, out var parsed) ? parsed : default;
        return Source.StartActivity(name, kind, context, startTime: startTime);
    }

    /// <summary>
    /// A write to the audit's storage, as a span of the trace whose path waits on it; none off any trace's path (a
    /// write-behind flush), which would only make traces of their own.
    /// </summary>
    public static Activity? StartAuditWrite(string kind, string recordId) => Activity.Current is null ? null
        : Source.StartActivity(AuditWrite, ActivityKind.Client)?.SetTag(AuditKind, kind).SetTag(AuditRecordId, recordId);

    /// <summary>Marks <paramref name="span"/> failed, with the reason (never a secret: callers pass what the audit shows).</summary>
    public static void Fail(Activity? span, string reason) => span?.SetStatus(ActivityStatusCode.Error, reason);
}

/// <summary>A W3C trace context as it travels with a message: <c>traceparent</c>, and <c>tracestate</c> when there is one.</summary>
public sealed record TraceContext(string TraceParent, string? TraceState);
