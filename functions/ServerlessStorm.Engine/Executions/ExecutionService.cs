using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Executions;

/// <summary>The workflow execution a task's execution belongs to, and the task.</summary>
public sealed record WorkflowLink(string ParentId, string Task);

/// <summary>No execution has that id.</summary>
public sealed class ExecutionNotFoundException(string id) : Exception($"execution '{id}' does not exist");

/// <summary>No action with that ref is loaded.</summary>
public sealed class ActionNotFoundException(string actionRef) : Exception($"action '{actionRef}' does not exist");

/// <summary>
/// Requests executions: records each as <c>requested</c> in the audit (secret parameters masked), then puts it on
/// the executions queue with its real parameters for a runner to pick up.
/// </summary>
public sealed class ExecutionService(PackCatalog catalog, RunnerRegistry runners, Datastore.KeyValueService datastore, IAuditStore audit, IMessageBus bus, TimeProvider time,
    Workflows.IWorkflowControl? workflows = null, CompletionAnnouncer? announcer = null, ConcurrencyGate? concurrency = null, PackConfigService? packConfigs = null)
{
    /// <summary>Runs an action with literal parameters for <paramref name="user"/>, as <c>storm run</c> and the API do.</summary>
    public async Task<ExecutionRecord> RunAsync(string actionRef, JsonObject parameters, string? traceTag, string user, CancellationToken cancellationToken)
    {
        var action = catalog.Actions.GetValueOrDefault(actionRef) ?? throw new ActionNotFoundException(actionRef);
        var shell = runners.TryGet(action.RunnerType, out var runner) ? runner.ShellCommandParameter : null;
        var id = StormIds.New(time.GetUtcNow());
        var keyValues = await datastore.SnapshotAsync(ParameterResolver.DatastoreKeys(action, parameters), id, user, cancellationToken);
        var context = await ParameterResolver.ContextAsync(packConfigs, catalog, action, id, user, cancellationToken);
        var resolved = ParameterResolver.Resolve(action, parameters, renderSupplied: true, keyValues, shell, context: context);
        return await RequestAsync(action, resolved, id, traceTag ?? id, null, null, cancellationToken, user: user);
    }

    /// <summary>
    /// Records and enqueues an execution with resolved parameters. Idempotent on <paramref name="executionId"/>: when
    /// the execution exists already, it is enqueued again only if no runner has picked it up yet.
    /// </summary>
    public async Task<ExecutionRecord> RequestAsync(
        ActionDefinition action,
        JsonObject parameters,
        string executionId,
        string traceTag,
        string? triggerInstanceId,
        string? ruleRef,
        CancellationToken cancellationToken,
        string? reRunOf = null,
        int retryCount = 0,
        TimeSpan delay = default,
        WorkflowLink? workflow = null,
        IReadOnlyList<string>? reRunTasks = null,
        string? user = null)
    {
        var now = time.GetUtcNow();
        var sealedParameters = SealSecrets(action, parameters);
        var record = new ExecutionRecord
        {
            Id = executionId,
            ActionRef = action.Ref,
            RunnerType = action.RunnerType,
            TraceTag = traceTag,
            TriggerInstanceId = triggerInstanceId,
            RuleRef = ruleRef,
            User = user,
            Parameters = (JsonObject)datastore.MaskSealed(SecretMasker.MaskParameters(action, parameters))!,
            SealedParameters = sealedParameters,
            ReRunOf = reRunOf,
            ReRunTasks = reRunTasks,
            RetryCount = retryCount,
            ParentId = workflow?.ParentId,
            WorkflowTask = workflow?.Task,
            Status = ExecutionStatus.Requested,
            StartTimestamp = now,
        };
        record.History.Add(new StatusChange(ExecutionStatus.Requested, now));

        if (!await audit.TryCreateExecutionAsync(record, cancellationToken))
        {
            var existing = await audit.GetExecutionAsync(executionId, cancellationToken);
            if (existing is not null && existing.Status != ExecutionStatus.Requested)
            {
                return existing;
            }

            record = existing ?? record;
        }

        // A workflow's task runs where its workflow runs (in an activity), not through the bus.
        if (workflow is null)
        {
            // The message carries this span's context: the runner's span continues it.
            using var span = Diagnostics.StormTracing.Source.StartActivity(Diagnostics.StormTracing.ExecutionRequest, System.Diagnostics.ActivityKind.Producer)
                ?.SetTag(Diagnostics.StormTracing.ActionRef, record.ActionRef)
                .SetTag(Diagnostics.StormTracing.ExecutionId, record.Id)
                .SetTag(Diagnostics.StormTracing.TraceTag, record.TraceTag);
            await bus.PublishAsync(StormQueues.Executions, StormEvents.Encode(RequestFor(record), now) with { Delay = delay }, cancellationToken);
        }

        return record;
    }

    /// <summary>The request that asks a runner to run <paramref name="record"/> (carrying it while it is still as written).</summary>
    public static ExecutionRequest RequestFor(ExecutionRecord record) =>
        new(record.Id, record.ActionRef, record.SealedParameters ?? record.Parameters, record.TraceTag) { Requested = record.Status == ExecutionStatus.Requested ? record : null };

    /// <summary>
    /// Puts a request back on the bus to be handled again after <paramref name="delay"/>, as a message of its own
    /// (Service Bus would drop one with the first request's id as a duplicate).
    /// </summary>
    public Task RequeueAsync(ExecutionRequest request, TimeSpan delay, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var eventId = $"{request.ExecutionId}.requeued-{now.ToUnixTimeMilliseconds()}-{Random.Shared.Next(1_000_000):D6}";
        return bus.PublishAsync(StormQueues.Executions, StormEvents.Encode(request, now, eventId) with { Delay = delay }, cancellationToken);
    }

    /// <summary>
    /// Applies the action's retry policy to a finished execution: requests the next attempt (after the policy's
    /// delay, through the bus) when the outcome is one it retries and attempts remain. The attempt's id is derived
    /// from the execution, so applying it twice requests it once. As in StackStorm, a workflow's task is not retried
    /// by policy (the attempt would run outside its workflow): a task's own <c>retry</c> does that.
    /// </summary>
    public async Task<ExecutionRecord?> RetryIfDueAsync(ExecutionRecord finished, CancellationToken cancellationToken)
    {
        if (finished.ParentId is not null)
        {
            return null;
        }

        var policy = catalog.RetryPolicies.GetValueOrDefault(finished.ActionRef)?.FirstOrDefault(p =>
            (p.RetryOn == "failure" && finished.Status == ExecutionStatus.Failed) || (p.RetryOn == "timeout" && finished.Status == ExecutionStatus.Timeout));
        if (policy is null || finished.RetryCount >= policy.MaxRetryCount || !catalog.Actions.TryGetValue(finished.ActionRef, out var action))
        {
            return null;
        }

        var id = StormIds.ForRuleEnforcement(finished.Id, "retry", finished.EndTimestamp ?? finished.StartTimestamp);
        var parameters = Unsealed(finished, id);
        return await RequestAsync(action, parameters, id, finished.TraceTag, finished.TriggerInstanceId, finished.RuleRef, cancellationToken,
            reRunOf: finished.Id, retryCount: finished.RetryCount + 1, delay: policy.Delay, user: finished.User);
    }

    // The parameters an execution ran with, secrets opened from their sealed copy, for execution newId to run with.
    private JsonObject Unsealed(ExecutionRecord execution, string newId)
    {
        var parameters = new JsonObject();
        foreach (var (name, value) in execution.SealedParameters ?? execution.Parameters)
        {
            parameters[name] = value is JsonValue v && v.TryGetValue<string>(out var text) && datastore.TryUnsealValue(text, out var opened)
                ? opened
                : datastore.Rebind(value, execution.Id, newId);
        }

        return parameters;
    }

    /// <summary>
    /// Runs an execution again with the same parameters (secrets included, from their sealed copy), optionally
    /// overridden, as <c>st2 execution re-run</c> does. The new execution shares the trace and names the original.
    /// </summary>
    public async Task<ExecutionRecord> ReRunAsync(string executionId, JsonObject overrides, string user, CancellationToken cancellationToken, IReadOnlyList<string>? tasks = null)
    {
        var original = await audit.GetExecutionAsync(executionId, cancellationToken) ?? throw new ExecutionNotFoundException(executionId);
        var action = catalog.Actions.GetValueOrDefault(original.ActionRef) ?? throw new ActionNotFoundException(original.ActionRef);
        if (tasks is { Count: > 0 } && action.RunnerType != Workflows.WorkflowDefinition.RunnerType)
        {
            throw new ParameterValidationException(action.Ref, [$"tasks can be named only when re-running a workflow; {action.Ref} runs on {action.RunnerType}"]);
        }
        // Immutable parameters come back from their defaults; the rest as they ran, secrets opened.
        var id = StormIds.New(time.GetUtcNow());
        var parameters = Unsealed(original, id);
        foreach (var immutable in action.Parameters.Values.Where(p => p.Immutable))
        {
            parameters.Remove(immutable.Name);
        }

        foreach (var (name, value) in overrides)
        {
            parameters[name] = value?.DeepClone();
        }

        // The original's values were rendered when it ran and are data now; the overrides are rendered like the
        // parameters of any run (templates, the datastore as the re-running user sees it).
        var shell = runners.TryGet(action.RunnerType, out var runner) ? runner.ShellCommandParameter : null;
        var keyValues = await datastore.SnapshotAsync(ParameterResolver.DatastoreKeys(action, overrides), id, user, cancellationToken);
        var context = await ParameterResolver.ContextAsync(packConfigs, catalog, action, id, user, cancellationToken);
        parameters = ParameterResolver.Resolve(action, parameters, renderSupplied: false, keyValues, shell,
            renderAlso: overrides.Select(p => p.Key).ToHashSet(StringComparer.Ordinal), context: context);
        // As st2 execution re-run --tasks: the workflow runs again from the tasks named; every other task that
        // succeeded keeps its result. Without tasks, the whole workflow runs again.
        return await RequestAsync(action, parameters, id, original.TraceTag, original.TriggerInstanceId, original.RuleRef, cancellationToken,
            reRunOf: original.Id, reRunTasks: tasks is { Count: > 0 } ? tasks : null, user: user);
    }

    /// <summary>
    /// Cancels an execution: one not yet running is canceled at once; a running one is marked canceling, and the
    /// worker running it stops the runner (killing its processes) and records it canceled.
    /// </summary>
    public async Task<ExecutionRecord> CancelAsync(string executionId, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var record = await audit.GetExecutionAsync(executionId, cancellationToken) ?? throw new ExecutionNotFoundException(executionId);
            if (ExecutionStatus.IsTerminal(record.Status) || record.Status == ExecutionStatus.Canceling)
            {
                return record;
            }

            if (record.RunnerType == Workflows.WorkflowDefinition.RunnerType && workflows is not null)
            {
                return await CancelWorkflowAsync(record, cancellationToken);
            }

            record.Transition(record.Status == ExecutionStatus.Running ? ExecutionStatus.Canceling : ExecutionStatus.Canceled, time.GetUtcNow());
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                if (record.Status == ExecutionStatus.Canceled)
                {
                    Diagnostics.StormMetrics.ExecutionFinished(record); // ended here: no runner will record it
                }

                return record;
            }
        }

        throw new InvalidOperationException($"execution {executionId} kept changing while being canceled");
    }

    // A workflow is stopped in its engine (from any host), then every task execution still going is canceled, and
    // the workflow recorded canceled: its orchestration will not record an end of its own.
    private async Task<ExecutionRecord> CancelWorkflowAsync(ExecutionRecord workflow, CancellationToken cancellationToken)
    {
        await workflows!.TerminateAsync(workflow.Id, "canceled on request", cancellationToken);
        var trace = await audit.GetTraceAsync(workflow.TraceTag, cancellationToken);
        foreach (var task in trace.Executions.Where(e => e.ParentId == workflow.Id && !ExecutionStatus.IsTerminal(e.Status)))
        {
            await CancelAsync(task.Id, cancellationToken);
        }

        for (var attempt = 0; attempt < 5; attempt++)
        {
            var record = await audit.GetExecutionAsync(workflow.Id, cancellationToken) ?? throw new ExecutionNotFoundException(workflow.Id);
            if (ExecutionStatus.IsTerminal(record.Status))
            {
                return record;
            }

            record.Error = "canceled on request";
            record.Transition(ExecutionStatus.Canceled, time.GetUtcNow());
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                // Its orchestration will not record its end, so its end is announced here (actiontrigger, notify)
                // and its concurrency slots are given back.
                Diagnostics.StormMetrics.ExecutionFinished(record);
                await Workflows.WorkflowTaskRunner.CountEndedTaskAsync(audit, record, cancellationToken); // a sub-workflow is its parent's task
                if (concurrency is not null)
                {
                    await concurrency.LeaveAsync(record, cancellationToken);
                }

                if (announcer is not null)
                {
                    await announcer.AnnounceAsync(catalog.Actions.GetValueOrDefault(record.ActionRef), record, cancellationToken);
                }

                return record;
            }
        }

        throw new InvalidOperationException($"execution {workflow.Id} kept changing while being canceled");
    }

    /// <summary>Pauses a running workflow (its running tasks finish; none starts until it is resumed).</summary>
    public Task<ExecutionRecord> PauseAsync(string executionId, CancellationToken cancellationToken) =>
        HoldAsync(executionId, ExecutionStatus.Running, ExecutionStatus.Paused, (id, ct) => workflows!.SuspendAsync(id, "paused on request", ct), cancellationToken);

    /// <summary>Resumes a paused workflow.</summary>
    public Task<ExecutionRecord> ResumeAsync(string executionId, CancellationToken cancellationToken) =>
        HoldAsync(executionId, ExecutionStatus.Paused, ExecutionStatus.Running, (id, ct) => workflows!.ResumeAsync(id, "resumed on request", ct), cancellationToken);

    private async Task<ExecutionRecord> HoldAsync(string executionId, string from, string to, Func<string, CancellationToken, Task> apply, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var record = await audit.GetExecutionAsync(executionId, cancellationToken) ?? throw new ExecutionNotFoundException(executionId);
            if (record.RunnerType != Workflows.WorkflowDefinition.RunnerType || workflows is null)
            {
                throw new InvalidOperationException($"execution '{executionId}' is not a workflow ({record.ActionRef} runs on {record.RunnerType}); only workflows pause and resume");
            }

            if (record.Status == to)
            {
                return record;
            }

            if (record.Status != from)
            {
                throw new InvalidOperationException($"execution '{executionId}' is {record.Status}; only a {from} workflow can become {to}");
            }

            await apply(executionId, cancellationToken);
            record.Transition(to, time.GetUtcNow());
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                // As in StackStorm, a workflow's running sub-workflows pause and resume with it.
                var trace = await audit.GetTraceAsync(record.TraceTag, cancellationToken);
                foreach (var sub in trace.Executions.Where(e => e.ParentId == executionId && e.RunnerType == record.RunnerType && e.Status == from))
                {
                    await HoldAsync(sub.Id, from, to, apply, cancellationToken);
                }

                return record;
            }
        }

        throw new InvalidOperationException($"execution {executionId} kept changing");
    }

    // Secret parameters, and any other value that carries one (a shell command's variables), are sealed: they
    // cross the bus and rest in the audit's re-run copy encrypted; the executor opens them just before the runner.
    public JsonObject SealSecrets(ActionDefinition action, JsonObject parameters)
    {
        var sealedParameters = (JsonObject)parameters.DeepClone();
        foreach (var secret in action.Parameters.Values.Where(p => p.Secret && sealedParameters[p.Name] is not null))
        {
            sealedParameters[secret.Name] = datastore.SealValue(sealedParameters[secret.Name]);
        }

        var secrets = SecretMasker.SecretValues(action, parameters);
        return secrets.Count > 0 ? (JsonObject)SealCarriers(sealedParameters, secrets)! : sealedParameters;
    }

    private JsonNode? SealCarriers(JsonNode? node, IReadOnlyList<string> secrets) => node switch
    {
        JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, SealCarriers(p.Value, secrets)))),
        JsonArray array => new JsonArray([.. array.Select(i => SealCarriers(i, secrets))]),
        JsonValue v when v.TryGetValue<string>(out var text) && secrets.Any(s => text.Contains(s, StringComparison.Ordinal)) => datastore.SealValue(v),
        _ => node?.DeepClone(),
    };
}
