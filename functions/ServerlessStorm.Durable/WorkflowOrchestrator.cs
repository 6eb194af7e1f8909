using System.Text.Json.Nodes;
using Microsoft.DurableTask;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Durable;

/// <summary>What starts a workflow: its execution, the workflow file's text, and the input (JSON text).</summary>
public sealed record WorkflowStart(string ExecutionId, string TraceTag, string WorkflowFile, string WorkflowText, string Input)
{
    /// <summary>A re-run: the workflow execution whose succeeded tasks keep their results, except <see cref="ReRunTasks"/>.</summary>
    public string? ReuseFrom { get; init; }

    public IReadOnlyList<string> ReRunTasks { get; init; } = [];

    /// <summary>The W3C trace context the workflow's tasks continue (the span that started it).</summary>
    public string? TraceParent { get; init; }
}

/// <summary>How a workflow ended: its status, output (JSON text) and errors.</summary>
public sealed record WorkflowEnd(string Status, string? Output, IReadOnlyList<string> Errors);

/// <summary>The workflow execution to record as ended, and how.</summary>
public sealed record WorkflowFinish(string ExecutionId, WorkflowEnd End);

/// <summary>One task's action for the activity to run.</summary>
public sealed record TaskActionRequest(string WorkflowExecutionId, string TraceTag, string ActionId, string Task, string ActionRef, string Input)
{
    /// <summary>Take this task's result from that workflow execution when it succeeded there.</summary>
    public string? ReuseFrom { get; init; }

    /// <summary>The re-run's tasks inside this task's sub-workflow.</summary>
    public IReadOnlyList<string> SubReRunTasks { get; init; } = [];

    /// <summary>The W3C trace context the task's span continues (its workflow's).</summary>
    public string? TraceParent { get; init; }
}

/// <summary>The datastore keys (<c>scope.name</c>) a workflow's expressions read.</summary>
public sealed record DatastoreSnapshotRequest(string WorkflowExecutionId, IReadOnlyList<string> Keys);

/// <summary>How a task's action ended (result as JSON text).</summary>
public sealed record TaskActionOutcome(string Status, string? Result, string? Error, string? ExecutionId)
{
    /// <summary>The task's action is a workflow: run this as a sub-orchestration, and its end is the task's.</summary>
    public WorkflowStart? SubWorkflow { get; init; }

    public static TaskActionOutcome Of(WorkflowTaskOutcome outcome) => new(outcome.Status, outcome.Result?.ToJsonString(), outcome.Error, outcome.ExecutionId);
}

/// <summary>
/// The one orchestrator every workflow runs in: it drives the <see cref="WorkflowInterpreter"/>, turning its
/// commands into activities (each task's action) and durable timers (delays), and its outcomes back into the
/// interpreter. Everything it decides comes from its input and the recorded activity results, so a replay decides
/// the same; it reads no clock and does no I/O.
/// </summary>
public sealed class WorkflowOrchestrator : TaskOrchestrator<WorkflowStart, WorkflowEnd>
{
    public const string Name = "StormWorkflow";

    public override async Task<WorkflowEnd> RunAsync(TaskOrchestrationContext context, WorkflowStart start)
    {
        // Whatever happens, the last step records the end: the runner that started the workflow does not wait for it.
        var (workflow, problems) = WorkflowLoader.LoadText(start.WorkflowText, start.WorkflowFile);
        var result = workflow is null || problems.Count > 0
            ? new WorkflowEnd(ExecutionStatus.Failed, null, [.. problems.Select(p => p.ToString())])
            : await InterpretAsync(context, start, workflow);
        await context.CallActivityAsync(FinishWorkflowActivity.Name, new WorkflowFinish(start.ExecutionId, result));
        return result;
    }

    private static async Task<WorkflowEnd> InterpretAsync(TaskOrchestrationContext context, WorkflowStart start, WorkflowDefinition workflow)
    {
        // The datastore keys the workflow's expressions name are read once, by an activity (no I/O here), so a replay
        // reads the same values; secrets are references its tasks open.
        var keys = WorkflowDatastore.KeysOf(workflow);
        var values = keys.Count == 0 ? []
            : await context.CallActivityAsync<Dictionary<string, string>>(DatastoreSnapshotActivity.Name, new DatastoreSnapshotRequest(start.ExecutionId, keys));
        using var datastore = Engine.Expressions.TemplateScope.UseKeyValues(new Engine.Expressions.Runtime.KeyValueSnapshot(values));
        var interpreter = new WorkflowInterpreter(workflow);
        var running = new Dictionary<Task<TaskActionOutcome>, string>();
        CompleteWorkflow? end = null;
        void Take(IReadOnlyList<WorkflowCommand> commands)
        {
            foreach (var command in commands)
            {
                switch (command)
                {
                    case RunAction action:
                        running[RunAsync(context, start, action)] = action.Id;
                        break;
                    case CompleteWorkflow complete:
                        end = complete;
                        break;
                }
            }
        }

        Take(interpreter.Start(JsonNode.Parse(start.Input) as JsonObject ?? []));
        while (running.Count > 0)
        {
            var finished = await Task.WhenAny(running.Keys);
            var id = running[finished];
            running.Remove(finished);
            var outcome = await finished;
            Take(interpreter.OnActionCompleted(id, outcome.Status, outcome.Result is null ? null : JsonNode.Parse(outcome.Result), outcome.Error));
        }

        return end is null
            ? new WorkflowEnd(ExecutionStatus.Failed, null, ["the workflow stopped without an outcome"])
            : new WorkflowEnd(end.Status, end.Output?.ToJsonString(), end.Errors);
    }

    private static async Task<TaskActionOutcome> RunAsync(TaskOrchestrationContext context, WorkflowStart start, RunAction action)
    {
        if (action.Delay > TimeSpan.Zero)
        {
            await DelayTimer.WaitAsync(context, action.Delay);
        }

        TaskActionOutcome outcome;
        var request = new TaskActionRequest(start.ExecutionId, start.TraceTag, action.Id, action.Task, action.ActionRef, action.Input.ToJsonString())
        {
            ReuseFrom = start.ReRunTasks.Contains(action.Task) ? null : start.ReuseFrom,
            SubReRunTasks = [.. start.ReRunTasks.Where(t => t.StartsWith(action.Task + ".", StringComparison.Ordinal)).Select(t => t[(action.Task.Length + 1)..])],
            TraceParent = start.TraceParent,
        };
        for (var waits = 0; ; waits++)
        {
            try
            {
                outcome = await context.CallActivityAsync<TaskActionOutcome>(RunTaskActionActivity.Name, request);
            }
            catch (TaskFailedException ex)
            {
                // The activity itself broke (not the action: that fails with a result): the task fails, transitions decide.
                return new TaskActionOutcome(ExecutionStatus.Failed, null, $"the task's activity failed: {ex.FailureDetails.ErrorMessage}", null);
            }

            if (outcome.Status != ExecutionStatus.Delayed)
            {
                break;
            }

            // A sub-workflow waiting for a concurrency slot: asked again after a durable timer (1 s, doubling to 5 s),
            // so no worker is held while it waits and a long wait adds few events to the history.
            await DelayTimer.WaitAsync(context, SlotRecheck(waits));
        }

        if (outcome.SubWorkflow is { } sub)
        {
            return await RunSubWorkflowAsync(context, sub);
        }

        // An approval: the task's inquiry waits for a person; its answer (or expiry) arrives as an event.
        return outcome.Status == ExecutionStatus.Pending && outcome.ExecutionId is { } inquiry
            ? await context.WaitForExternalEvent<TaskActionOutcome>(InquiryEvent(inquiry))
            : outcome;
    }

    // Its instance id is its execution's, so pause, resume, cancel and approvals find it as they find any workflow.
    private static async Task<TaskActionOutcome> RunSubWorkflowAsync(TaskOrchestrationContext context, WorkflowStart sub)
    {
        WorkflowEnd end;
        try
        {
            end = await context.CallSubOrchestratorAsync<WorkflowEnd>(Name, sub, new SubOrchestrationOptions(new TaskOptions(), sub.ExecutionId));
        }
        catch (TaskFailedException ex)
        {
            end = new WorkflowEnd(ExecutionStatus.Failed, null, [$"the sub-workflow's orchestration failed: {ex.FailureDetails.ErrorMessage}"]);
        }

        var result = WorkflowTaskRunner.WorkflowResult(end.Output is null ? null : JsonNode.Parse(end.Output), end.Errors);
        return new TaskActionOutcome(end.Status, result.ToJsonString(), end.Status == ExecutionStatus.Succeeded ? null : string.Join("; ", end.Errors), sub.ExecutionId);
    }

    private static TimeSpan SlotRecheck(int waits) => TimeSpan.FromSeconds(Math.Min(5, 1 << Math.Min(waits, 3)));

    /// <summary>The event that ends a workflow task's inquiry.</summary>
    public static string InquiryEvent(string inquiryExecutionId) => $"inquiry-{inquiryExecutionId}";
}

/// <summary>
/// A task's delay as a durable timer that never fires before the task is due. Durable's Azure Storage backend (the
/// local task hub's, and Durable Functions' by default) hides a timer's queue message for whole seconds, cut down from
/// the time left when the message is sent: a timer set for exactly the due time fires up to a second early, and a
/// one-second delay hardly waits at all. So the timer is set one second past the due time, which the backend's cut
/// brings back to the due time (plus the few milliseconds the step took to send it) for Orquesta's whole-second delays;
/// should it still fire early, it is set again.
/// </summary>
public static class DelayTimer
{
    /// <summary>How coarse the backend's timers may be, and so how far past the due time the timer is set.</summary>
    public static readonly TimeSpan Granularity = TimeSpan.FromSeconds(1);

    /// <summary>When the timer is set to fire for a task due at <paramref name="due"/>.</summary>
    public static DateTime FireAt(DateTime due) => due + Granularity;

    /// <summary>Waits <paramref name="delay"/> from the orchestration's current time (replay-safe).</summary>
    public static async Task WaitAsync(TaskOrchestrationContext context, TimeSpan delay)
    {
        var due = context.CurrentUtcDateTime + delay;
        while (context.CurrentUtcDateTime < due)
        {
            await context.CreateTimer(FireAt(due), CancellationToken.None);
        }
    }
}

/// <summary>
/// The work the orchestrator hands to activities, whichever host runs them: the local task hub wraps these in
/// DurableTask activities, the Function app in activity-triggered functions.
/// </summary>
public sealed class WorkflowActivities(WorkflowTaskRunner tasks)
{
    /// <summary>Runs one task's action as a child execution (see <see cref="WorkflowTaskRunner"/>).</summary>
    public async Task<TaskActionOutcome> RunTaskAsync(TaskActionRequest request)
    {
        // Each task is a span of its workflow's trace, however many activities and instances the workflow spans.
        using var span = StormTracing.Start(StormTracing.WorkflowTask, System.Diagnostics.ActivityKind.Internal,
                request.TraceParent is { } parent ? new TraceContext(parent, null) : null)
            ?.SetTag(StormTracing.WorkflowTaskName, request.Task)
            .SetTag(StormTracing.ActionRef, request.ActionRef)
            .SetTag(StormTracing.ExecutionId, request.WorkflowExecutionId)
            .SetTag(StormTracing.TraceTag, request.TraceTag);
        var outcome = await tasks.RunAsync(request.WorkflowExecutionId, request.TraceTag, request.ActionId, request.Task, request.ActionRef,
            JsonNode.Parse(request.Input) as JsonObject ?? [], CancellationToken.None, request.ReuseFrom, request.SubReRunTasks);
        var result = TaskActionOutcome.Of(outcome) with
        {
            SubWorkflow = outcome.SubWorkflow is { } sub
                ? new WorkflowStart(sub.ExecutionId, request.TraceTag, sub.WorkflowFile, sub.WorkflowText, sub.Input.ToJsonString())
                {
                    ReuseFrom = sub.ReuseFrom,
                    ReRunTasks = sub.ReRunTasks,
                    TraceParent = StormTracing.Current()?.TraceParent ?? request.TraceParent,
                }
                : null,
        };
        if (outcome.Status is ExecutionStatus.Failed or ExecutionStatus.Timeout)
        {
            StormTracing.Fail(span, $"the task's action ended {outcome.Status}");
        }

        return result;
    }

    /// <summary>Reads the datastore keys a workflow's expressions name (see <see cref="WorkflowTaskRunner.DatastoreSnapshotAsync"/>).</summary>
    public Task<Dictionary<string, string>> DatastoreSnapshotAsync(DatastoreSnapshotRequest request) =>
        tasks.DatastoreSnapshotAsync(request.WorkflowExecutionId, request.Keys, CancellationToken.None);

    /// <summary>Records the workflow execution's end (see <see cref="WorkflowTaskRunner.FinishWorkflowAsync"/>).</summary>
    public async Task<bool> FinishAsync(WorkflowFinish finish)
    {
        await tasks.FinishWorkflowAsync(finish.ExecutionId, finish.End.Status, finish.End.Output is null ? null : JsonNode.Parse(finish.End.Output) as JsonObject,
            finish.End.Errors, CancellationToken.None);
        return true;
    }
}

public sealed class RunTaskActionActivity(WorkflowActivities activities) : TaskActivity<TaskActionRequest, TaskActionOutcome>
{
    public const string Name = "StormWorkflowTask";

    public override Task<TaskActionOutcome> RunAsync(TaskActivityContext context, TaskActionRequest request) => activities.RunTaskAsync(request);
}

public sealed class FinishWorkflowActivity(WorkflowActivities activities) : TaskActivity<WorkflowFinish, bool>
{
    public const string Name = "StormWorkflowFinish";

    public override Task<bool> RunAsync(TaskActivityContext context, WorkflowFinish finish) => activities.FinishAsync(finish);
}

public sealed class DatastoreSnapshotActivity(WorkflowActivities activities) : TaskActivity<DatastoreSnapshotRequest, Dictionary<string, string>>
{
    public const string Name = "StormWorkflowDatastore";

    public override Task<Dictionary<string, string>> RunAsync(TaskActivityContext context, DatastoreSnapshotRequest request) => activities.DatastoreSnapshotAsync(request);
}
