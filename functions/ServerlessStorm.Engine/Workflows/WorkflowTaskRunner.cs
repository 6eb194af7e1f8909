using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Workflows;

/// <summary>How one task's action ended, as the interpreter is told.</summary>
public sealed record WorkflowTaskOutcome(string Status, JsonNode? Result, string? Error, string? ExecutionId)
{
    /// <summary>The task's action is itself a workflow, not run here: the caller runs it as a sub-workflow.</summary>
    public SubWorkflowStart? SubWorkflow { get; init; }
}

/// <summary>
/// A workflow task's sub-workflow, to run under its child execution's id (<paramref name="ExecutionId"/>);
/// <paramref name="ReuseFrom"/>: on a re-run, the original sub-workflow whose succeeded tasks keep their results.
/// </summary>
public sealed record SubWorkflowStart(string ExecutionId, string WorkflowFile, string WorkflowText, JsonObject Input, string? ReuseFrom)
{
    /// <summary>The re-run's tasks inside the sub-workflow (named <c>task.subtask</c> in the re-run).</summary>
    public IReadOnlyList<string> ReRunTasks { get; init; } = [];
}

/// <summary>
/// Runs one workflow task's action as an execution of its own — a child of the workflow's execution, audited like
/// any other, through the same parameter checks, policies and runners — here, in the caller (a Durable activity),
/// and returns how it ended. The child's id comes from the workflow execution and the interpreter's action id, so
/// running the same task again (an activity retried after a crash) finds the execution it already started — and a
/// re-run of the workflow finds what the same task did in the original.
/// </summary>
public sealed class WorkflowTaskRunner(PackCatalog catalog, RunnerRegistry runners, ExecutionService executions, ActionExecutor executor, CompletionAnnouncer announcer, IAuditStore audit,
    Datastore.KeyValueService datastore, ConcurrencyGate concurrency, TimeProvider time, PackConfigService? packConfigs = null)
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <param name="reuseFrom">A re-run: the earlier workflow execution whose result for this action is taken when it succeeded there.</param>
    /// <param name="subReRunTasks">A re-run of tasks inside this task's sub-workflow: it runs again from those, even if it succeeded.</param>
    public async Task<WorkflowTaskOutcome> RunAsync(string workflowExecutionId, string traceTag, string actionId, string task, string actionRef, JsonObject input,
        CancellationToken cancellationToken, string? reuseFrom = null, IReadOnlyList<string>? subReRunTasks = null)
    {
        var earlier = reuseFrom is not null && StormIds.TryGetTimestamp(reuseFrom, out var originalStart)
            ? await audit.GetExecutionAsync(StormIds.ForRuleEnforcement(reuseFrom, actionId, originalStart), cancellationToken)
            : null;
        if (earlier is { Status: ExecutionStatus.Succeeded } && subReRunTasks is not { Count: > 0 })
        {
            // Not run again, so not counted again.
            return new WorkflowTaskOutcome(earlier.Status, (earlier.SealedResult ?? earlier.Result)?.DeepClone(), null, earlier.Id);
        }

        // A task runs for its workflow's user; the workflow's record also says whether it holds concurrency slots.
        var workflow = await audit.GetExecutionAsync(workflowExecutionId, cancellationToken);
        if (!catalog.Actions.TryGetValue(actionRef, out var action))
        {
            return Counted(workflow, new WorkflowTaskOutcome(ExecutionStatus.Failed, null, $"action '{actionRef}' does not exist", null));
        }

        await RenewWorkflowSlotsAsync(workflow, cancellationToken);

        var started = StormIds.TryGetTimestamp(workflowExecutionId, out var at) ? at : time.GetUtcNow();
        var id = StormIds.ForRuleEnforcement(workflowExecutionId, actionId, started);

        // The input was rendered by the workflow and is data; the action's defaults may still read the datastore
        // (as the workflow's user), and their secrets become references for this task's execution.
        JsonObject parameters;
        try
        {
            var shell = runners.TryGet(action.RunnerType, out var runner) ? runner.ShellCommandParameter : null;
            var keyValues = await datastore.SnapshotAsync(ParameterResolver.DatastoreKeys(action, new JsonObject()), id, workflow?.User, cancellationToken);
            parameters = ParameterResolver.Resolve(action, input, renderSupplied: false, keyValues, shellCommandParameter: shell,
                context: await ParameterResolver.ContextAsync(packConfigs, catalog, action, id, workflow?.User, cancellationToken));
        }
        catch (ParameterValidationException ex)
        {
            return Counted(workflow, new WorkflowTaskOutcome(ExecutionStatus.Failed, null, ex.Message, null));
        }

        // The task's parameters come from its workflow's: the datastore references in them were the workflow's.
        parameters = (JsonObject)datastore.Rebind(parameters, workflowExecutionId, id)!;
        var record = await executions.RequestAsync(action, parameters, id, traceTag, null, null, cancellationToken, workflow: new WorkflowLink(workflowExecutionId, task), user: workflow?.User);
        if (action.RunnerType == WorkflowDefinition.RunnerType && !ExecutionStatus.IsTerminal(record.Status))
        {
            // A re-run's sub-workflow is itself re-run from what failed in the original one.
            var reuse = earlier?.RunnerType == WorkflowDefinition.RunnerType ? earlier.Id : null;
            return await StartSubWorkflowAsync(workflow, action, record, parameters, reuse, reuse is null ? [] : subReRunTasks ?? [], cancellationToken);
        }

        if (!ExecutionStatus.IsTerminal(record.Status))
        {
            // Found running: the activity that ran it before was lost with its worker, so this one takes it over.
            await executor.HandleAsync(ExecutionService.RequestFor(record), cancellationToken, takeOver: record.Status is ExecutionStatus.Running or ExecutionStatus.Scheduled);
        }

        // Delayed by a concurrency policy, or run by another worker: wait for it to end.
        var done = await audit.GetExecutionAsync(id, cancellationToken) ?? record;
        while (!ExecutionStatus.IsTerminal(done.Status) && done.Status != ExecutionStatus.Pending)
        {
            await Task.Delay(PollInterval, time, cancellationToken);
            done = await audit.GetExecutionAsync(id, cancellationToken) ?? done;
        }

        // Pending: an inquiry waits for a person; the workflow waits for the answer as an event (see InquiryService).
        // An inquiry's end is counted where it is written (the answer may come before this reads the record), as is a
        // sub-workflow's.
        var outcome = new WorkflowTaskOutcome(done.Status, (done.SealedResult ?? done.Result)?.DeepClone(), done.Error, done.Id);
        return action.RunnerType is Actions.Runners.InquirerRunner.Type or WorkflowDefinition.RunnerType ? outcome : Counted(workflow, outcome, done);
    }

    /// <summary>
    /// The values of datastore <paramref name="keys"/> (<c>scope.name</c>) for workflow execution
    /// <paramref name="workflowExecutionId"/>'s expressions, read as its user: plain values as they are, secrets as
    /// references bound to the workflow (its tasks carry them on); missing keys are absent.
    /// </summary>
    public async Task<Dictionary<string, string>> DatastoreSnapshotAsync(string workflowExecutionId, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var workflow = await audit.GetExecutionAsync(workflowExecutionId, cancellationToken);
        var pairs = keys.Select(k => k.Split('.', 2)).Where(p => p.Length == 2).Select(p => (Scope: p[0], Name: p[1])).ToList();
        var lookup = await datastore.SnapshotAsync(pairs, workflowExecutionId, workflow?.User, cancellationToken);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (scope, name) in pairs)
        {
            if (lookup.Get(scope, name) is { } value)
            {
                values[$"{scope}.{name}"] = value;
            }
        }

        return values;
    }

    /// <summary>A task's outcome, counted when it is final (the task's execution, if it has one, gives its duration).</summary>
    private static WorkflowTaskOutcome Counted(ExecutionRecord? workflow, WorkflowTaskOutcome outcome, ExecutionRecord? task = null)
    {
        if (ExecutionStatus.IsTerminal(outcome.Status))
        {
            Diagnostics.StormMetrics.WorkflowTaskFinished(workflow?.ActionRef ?? UnknownWorkflow, outcome.Status, task?.EndTimestamp - task?.StartTimestamp);
        }

        return outcome;
    }

    /// <summary>
    /// Counts a workflow task whose final status was just written outside a task's activity (an inquiry's answer or
    /// expiry, a sub-workflow's end or cancel); nothing for an execution that is not a workflow's task.
    /// </summary>
    internal static async Task CountEndedTaskAsync(IAuditStore audit, ExecutionRecord task, CancellationToken cancellationToken)
    {
        if (task.ParentId is { } parent)
        {
            var workflow = await audit.GetExecutionAsync(parent, cancellationToken);
            Counted(workflow, new WorkflowTaskOutcome(task.Status, null, null, task.Id), task);
        }
    }

    // A task whose workflow's record is gone: still counted, under a name no action has.
    private const string UnknownWorkflow = "(unknown)";

    // The sub-workflow's execution is marked running here; its own orchestration records its end.
    private async Task<WorkflowTaskOutcome> StartSubWorkflowAsync(ExecutionRecord? workflow, ActionDefinition action, ExecutionRecord record, JsonObject parameters, string? reuseFrom,
        IReadOnlyList<string> reRunTasks, CancellationToken cancellationToken)
    {
        var (text, error) = await WorkflowFiles.ReadAsync(catalog.Packs.GetValueOrDefault(action.Pack)?.Directory, action.EntryPoint, cancellationToken);
        if (text is null)
        {
            await FinishWorkflowAsync(record.Id, ExecutionStatus.Failed, null, [error!], cancellationToken);
            return new WorkflowTaskOutcome(ExecutionStatus.Failed, WorkflowResult(null, [error!]), error, record.Id);
        }

        if (record.Status == ExecutionStatus.Canceling)
        {
            // Its workflow was canceled while it waited for a slot: it never started.
            record.Transition(ExecutionStatus.Canceled, time.GetUtcNow());
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                Diagnostics.StormMetrics.ExecutionFinished(record);
                await announcer.AnnounceAsync(action, record, cancellationToken);
                Counted(workflow, new WorkflowTaskOutcome(record.Status, null, null, record.Id), record);
            }

            return new WorkflowTaskOutcome(ExecutionStatus.Canceled, null, "canceled while waiting for a concurrency slot", record.Id);
        }

        for (var attempt = 0; attempt < 5 && record.Status is ExecutionStatus.Requested or ExecutionStatus.Scheduled or ExecutionStatus.Delayed; attempt++)
        {
            var now = time.GetUtcNow();

            // A sub-workflow under a concurrency policy takes its slot like any execution of its action: it waits
            // (delayed) or is canceled when the policy is full, and holds the slot until its orchestration ends.
            if (concurrency.Governs(record.ActionRef) && await concurrency.TryEnterAsync(record, now + ConcurrencyGate.WorkflowLease, cancellationToken) is { } full)
            {
                if (full.Action == ConcurrencyPolicy.Cancel)
                {
                    record.Error = $"canceled by policy {full.Ref}: {full.Threshold} execution(s) of {record.ActionRef} were already running";
                    record.Transition(ExecutionStatus.Canceled, now);
                    if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
                    {
                        Diagnostics.StormMetrics.ExecutionFinished(record);
                        await announcer.AnnounceAsync(action, record, cancellationToken);
                        return Counted(workflow, new WorkflowTaskOutcome(record.Status, null, record.Error, record.Id), record);
                    }
                }
                else
                {
                    if (record.Status != ExecutionStatus.Delayed)
                    {
                        record.Transition(ExecutionStatus.Delayed, now);
                        if (!await audit.TryUpdateExecutionAsync(record, cancellationToken))
                        {
                            record = await audit.GetExecutionAsync(record.Id, cancellationToken) ?? record;
                            continue;
                        }
                    }

                    // Not waited for here: the slot's holder may need this activity's worker for its own tasks. The
                    // orchestration waits on a durable timer and asks again.
                    return new WorkflowTaskOutcome(ExecutionStatus.Delayed, null, $"waiting for a slot of policy {full.Ref}", record.Id);
                }

                record = await audit.GetExecutionAsync(record.Id, cancellationToken) ?? record;
                continue;
            }

            if (record.Status is ExecutionStatus.Requested or ExecutionStatus.Delayed)
            {
                record.Transition(ExecutionStatus.Scheduled, now);
            }

            record.Transition(ExecutionStatus.Running, now);
            if (!await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                await concurrency.LeaveAsync(record, cancellationToken);
                record = await audit.GetExecutionAsync(record.Id, cancellationToken) ?? record;
            }
        }

        if (ExecutionStatus.IsTerminal(record.Status))
        {
            // Ended before it started (its workflow was canceled meanwhile): nothing to run.
            return new WorkflowTaskOutcome(record.Status, record.Result?.DeepClone(), record.Error, record.Id);
        }

        return new WorkflowTaskOutcome(ExecutionStatus.Running, null, null, record.Id)
        {
            SubWorkflow = new SubWorkflowStart(record.Id, action.EntryPoint!, text, parameters, reuseFrom) { ReRunTasks = reRunTasks },
        };
    }

    // A workflow under a concurrency policy holds its slots while it runs: each task it starts renews their lease.
    private async Task RenewWorkflowSlotsAsync(ExecutionRecord? workflow, CancellationToken cancellationToken)
    {
        if (catalog.ConcurrencyPolicies.Count > 0 && workflow is not null
            && concurrency.Governs(workflow.ActionRef) && !ExecutionStatus.IsTerminal(workflow.Status))
        {
            await concurrency.HoldForWorkflowAsync(workflow, time.GetUtcNow() + ConcurrencyGate.WorkflowLease,
                () => audit.GetExecutionAsync(workflow.Id, cancellationToken), cancellationToken);
        }
    }

    /// <summary>A workflow execution's result: its output and its errors.</summary>
    public static JsonObject WorkflowResult(JsonNode? output, IEnumerable<string> errors) =>
        new() { ["output"] = output?.DeepClone(), ["errors"] = new JsonArray([.. errors.Select(e => (JsonNode)e)]) };

    /// <summary>
    /// Records the workflow execution's end (the orchestrator's last step; the runner that started the workflow
    /// handed it off), announces it and applies its retry policy. Nothing happens when it has ended already.
    /// </summary>
    public async Task FinishWorkflowAsync(string workflowExecutionId, string status, JsonObject? output, IReadOnlyList<string> errors, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var record = await audit.GetExecutionAsync(workflowExecutionId, cancellationToken);
            if (record is null || ExecutionStatus.IsTerminal(record.Status))
            {
                if (record is not null)
                {
                    await concurrency.LeaveAsync(record, cancellationToken); // ended by a cancel: give back its slots again, in case
                }

                return;
            }

            record.Result = (JsonObject)datastore.MaskSealed(WorkflowResult(output, errors))!;
            record.Error = status == ExecutionStatus.Succeeded ? null : string.Join("; ", errors);
            record.Transition(status, time.GetUtcNow());
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                Diagnostics.StormMetrics.ExecutionFinished(record);
                await CountEndedTaskAsync(audit, record, cancellationToken); // a sub-workflow is its parent's task
                await concurrency.LeaveAsync(record, cancellationToken);
                await announcer.AnnounceAsync(catalog.Actions.GetValueOrDefault(record.ActionRef), record, cancellationToken);
                await executions.RetryIfDueAsync(record, cancellationToken);
                return;
            }
        }
    }
}
