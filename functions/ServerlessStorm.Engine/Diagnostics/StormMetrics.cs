using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace ServerlessStorm.Engine.Diagnostics;

/// <summary>
/// The engine's metrics (meter <c>ServerlessStorm</c>), for OpenTelemetry / Application Insights and for harnesses
/// that watch a running stack without reading the audit. Tags are refs and statuses, never values.
/// </summary>
public static class StormMetrics
{
    public const string MeterName = "ServerlessStorm";

    public const string TriggersAcceptedName = "storm.triggers.accepted";
    public const string TriggersRejectedName = "storm.triggers.rejected";
    public const string RulesMatchedName = "storm.rules.matched";
    public const string EnforcementsFailedName = "storm.rules.enforcements.failed";
    public const string ExecutionsStartedName = "storm.executions.started";
    public const string ExecutionsFinishedName = "storm.executions.finished";
    public const string ExecutionDurationName = "storm.executions.duration";
    public const string QueueWaitName = "storm.executions.queue_wait";
    public const string RunTimeName = "storm.executions.run_time";
    public const string WorkflowTasksName = "storm.workflow.tasks";
    public const string WorkflowTaskDurationName = "storm.workflow.task.duration";
    public const string QueueDepthName = "storm.bus.queue.depth";
    public const string QueueOldestAgeName = "storm.bus.queue.oldest_age";
    public const string DeadLetteredName = "storm.messages.dead_lettered";
    public const string JournalAppendName = "storm.audit.journal.append.duration";
    public const string InquiriesPendingName = "storm.inquiries.pending";

    // Tag names.
    public const string TriggerTag = "trigger";
    public const string StatusTag = "status";
    public const string RuleTag = "rule";
    public const string ActionTag = "action";
    public const string QueueTag = "queue";
    public const string WorkflowTag = "workflow";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Counter<long> TriggersAcceptedCounter = Meter.CreateCounter<long>(TriggersAcceptedName, description: "Trigger instances accepted and dispatched to the rules engine, by trigger type");
    private static readonly Counter<long> TriggersRejectedCounter = Meter.CreateCounter<long>(TriggersRejectedName, description: "Webhook deliveries refused, by trigger type and HTTP status");
    private static readonly Counter<long> RulesMatchedCounter = Meter.CreateCounter<long>(RulesMatchedName, description: "Rules that matched a trigger instance, by rule");
    private static readonly Counter<long> EnforcementsFailedCounter = Meter.CreateCounter<long>(EnforcementsFailedName, description: "Rule enforcements that could not request their action, by rule");
    private static readonly Counter<long> ExecutionsStartedCounter = Meter.CreateCounter<long>(ExecutionsStartedName, description: "Executions a runner started, by action");

    /// <summary>Executions that reached a final status, tagged <c>action</c> and <c>status</c>.</summary>
    public static readonly Counter<long> ExecutionsFinished = Meter.CreateCounter<long>(ExecutionsFinishedName, description: "Executions that reached a final status");

    private static readonly Histogram<double> ExecutionDuration = Meter.CreateHistogram<double>(ExecutionDurationName, unit: "s", description: "From an execution's request to its final status, by action and status");
    private static readonly Histogram<double> QueueWait = Meter.CreateHistogram<double>(QueueWaitName, unit: "s", description: "From an execution request's sending to a runner taking it, by action");
    private static readonly Histogram<double> RunTime = Meter.CreateHistogram<double>(RunTimeName, unit: "s", description: "From a runner starting an execution to its final status, by action and status");
    private static readonly Counter<long> WorkflowTasksCounter = Meter.CreateCounter<long>(WorkflowTasksName, description: "Workflow tasks whose action reached a final status, by workflow and status");
    private static readonly Histogram<double> WorkflowTaskDuration = Meter.CreateHistogram<double>(WorkflowTaskDurationName, unit: "s", description: "From a workflow task's action being requested to its final status, by workflow and status");
    private static readonly Counter<long> DeadLetteredCounter = Meter.CreateCounter<long>(DeadLetteredName, description: "Messages given up on after their last delivery, by queue");

    /// <summary>
    /// How long appending one write to the written-behind audit's journal took (µs), tagged <c>kind</c>: the journal's
    /// share of the pipeline's path.
    /// </summary>
    public static readonly Histogram<double> JournalAppend = Meter.CreateHistogram<double>(JournalAppendName, unit: "us", description: "Time to append one audit write to the journal");

    private static long _inquiriesPending = -1;

    /// <summary>Inquiries waiting for a response, as the last sweep for expired ones counted them (none before the first).</summary>
    private static readonly ObservableGauge<long> InquiriesPending = Meter.CreateObservableGauge(InquiriesPendingName,
        () => Interlocked.Read(ref _inquiriesPending) is var pending and >= 0 ? [new Measurement<long>(pending)] : Array.Empty<Measurement<long>>(),
        description: "Inquiries waiting for a response, as of the last sweep");

    public static void InquiriesPendingCounted(long pending) => Interlocked.Exchange(ref _inquiriesPending, pending);

    // Each queue's backlog as the last sample found it; a queue whose sample failed reports nothing until one succeeds.
    private static readonly ConcurrentDictionary<string, (long Depth, double OldestAge)> Backlogs = new(StringComparer.Ordinal);

    private static readonly ObservableGauge<long> QueueDepth = Meter.CreateObservableGauge(QueueDepthName,
        () => Backlogs.Select(b => new Measurement<long>(b.Value.Depth, Tag(QueueTag, b.Key))),
        description: "Messages on a bus queue not yet completed (waiting, delayed or being handled), by queue, as of the last sample");

    private static readonly ObservableGauge<double> QueueOldestAge = Meter.CreateObservableGauge(QueueOldestAgeName,
        () => Backlogs.Select(b => new Measurement<double>(b.Value.OldestAge, Tag(QueueTag, b.Key))), unit: "s",
        description: "How long the oldest message waiting on a bus queue has waited (0 when none waits), by queue, as of the last sample");

    /// <summary>A sample of <paramref name="queue"/>'s backlog: its depth, and the age of its oldest waiting message (none: zero).</summary>
    public static void BacklogSampled(string queue, long depth, TimeSpan oldestAge) => Backlogs[queue] = (depth, Math.Max(0, oldestAge.TotalSeconds));

    /// <summary>A sample of <paramref name="queue"/>'s backlog failed: unknown, rather than the last figures going stale.</summary>
    public static void BacklogUnknown(string queue) => Backlogs.TryRemove(queue, out _);

    public static void TriggerAccepted(string triggerType) => TriggersAcceptedCounter.Add(1, Tag(TriggerTag, triggerType));

    public static void TriggerRejected(string triggerType, int status) => TriggersRejectedCounter.Add(1, Tag(TriggerTag, triggerType), Tag(StatusTag, status));

    public static void RuleMatched(string rule) => RulesMatchedCounter.Add(1, Tag(RuleTag, rule));

    public static void EnforcementFailed(string rule) => EnforcementsFailedCounter.Add(1, Tag(RuleTag, rule));

    public static void ExecutionStarted(string actionRef) => ExecutionsStartedCounter.Add(1, Tag(ActionTag, actionRef));

    public static void ExecutionQueued(string actionRef, TimeSpan wait) => QueueWait.Record(wait.TotalSeconds, Tag(ActionTag, actionRef));

    public static void DeadLettered(string queue) => DeadLetteredCounter.Add(1, Tag(QueueTag, queue));

    /// <summary>A final status: counted, and the time since the request recorded.</summary>
    public static void ExecutionFinished(Executions.ExecutionRecord record)
    {
        ExecutionsFinished.Add(1, Tag(ActionTag, record.ActionRef), Tag(StatusTag, record.Status));
        if (record.EndTimestamp is { } end)
        {
            ExecutionDuration.Record((end - record.StartTimestamp).TotalSeconds, Tag(ActionTag, record.ActionRef), Tag(StatusTag, record.Status));

            // From the last start: a worker that takes over an execution whose worker died runs it again. None when it
            // ended before running (canceled, or held back by a policy).
            if (record.History.LastOrDefault(h => h.Status == Executions.ExecutionStatus.Running) is { } running)
            {
                RunTime.Record((end - running.At).TotalSeconds, Tag(ActionTag, record.ActionRef), Tag(StatusTag, record.Status));
            }
        }
    }

    /// <summary>
    /// A workflow task's action reached a final status: counted by its workflow's action and the status, and the
    /// time from its request to its end recorded when there was an execution to time.
    /// </summary>
    public static void WorkflowTaskFinished(string workflowRef, string status, TimeSpan? duration)
    {
        WorkflowTasksCounter.Add(1, Tag(WorkflowTag, workflowRef), Tag(StatusTag, status));
        if (duration is { } taken)
        {
            WorkflowTaskDuration.Record(taken.TotalSeconds, Tag(WorkflowTag, workflowRef), Tag(StatusTag, status));
        }
    }

    private static KeyValuePair<string, object?> Tag(string name, object? value) => new(name, value);
}
