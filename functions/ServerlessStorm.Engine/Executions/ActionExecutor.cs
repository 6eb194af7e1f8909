using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Json;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Executions;

/// <summary>Action executor settings (configuration section <c>Storm:Executor</c>).</summary>
public sealed class ExecutorOptions
{
    public const string Section = "Storm:Executor";

    /// <summary>How often a running execution's record is checked for a cancel request.</summary>
    public TimeSpan CancelPollInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long an execution delayed by a concurrency policy waits before it tries for a slot again.</summary>
    public TimeSpan ConcurrencyRecheckInterval { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// Runs requested executions: takes a slot under each of the action's concurrency policies (or delays or cancels
/// the execution, as the policy says), claims the execution (requested → scheduled → running, guarded by the
/// audit's concurrency token so a duplicate delivery cannot run it twice at once), runs the runner, records the
/// result and gives the slots back. A redelivered request for a finished execution is acknowledged without running anything.
/// </summary>
public sealed class ActionExecutor(
    PackCatalog catalog,
    RunnerRegistry runners,
    IAuditStore audit,
    CompletionAnnouncer announcer,
    Datastore.KeyValueService datastore,
    ExecutionService executions,
    ConcurrencyGate concurrency,
    IExecutionOutputStore output,
    IWorkerRegistry workers,
    Microsoft.Extensions.Options.IOptions<ExecutorOptions> options,
    TimeProvider time,
    ILogger<ActionExecutor> logger,
    PackConfigService? packConfigs = null)
{
    /// <summary>How long a running execution without a timeout parameter may run before it counts as abandoned.</summary>
    public static readonly TimeSpan DefaultAbandonTimeout = TimeSpan.FromMinutes(10);

    private static readonly TimeSpan MaxRequeueDelay = TimeSpan.FromDays(1);

    public static readonly TimeSpan AbandonGrace = TimeSpan.FromSeconds(30);

    /// <param name="request">The execution to run.</param>
    /// <param name="takeOver">
    /// Run it even if it is recorded as running: the caller knows the worker that ran it is gone (a Durable activity
    /// runs again only when its previous run was lost).
    /// </param>
    /// <param name="cancellationToken">Stops the run.</param>
    public async Task HandleAsync(ExecutionRequest request, CancellationToken cancellationToken, bool takeOver = false)
    {
        var (record, finished) = await ClaimAsync(request, takeOver, cancellationToken);
        if (finished is not null)
        {
            // Delivered again after it finished: release, announce and retry again (all idempotent) in case they were lost.
            await concurrency.LeaveAsync(finished, cancellationToken);
            await announcer.AnnounceAsync(catalog.Actions.GetValueOrDefault(finished.ActionRef), finished, cancellationToken);
            await executions.RetryIfDueAsync(finished, cancellationToken);
            return;
        }

        if (record is null)
        {
            return;
        }

        Diagnostics.StormMetrics.ExecutionStarted(request.ActionRef);
        var action = catalog.Actions.GetValueOrDefault(request.ActionRef);

        // A workflow keeps its datastore references as they are: its input rests in its engine's storage, and each
        // task opens what it is given (the references are carried on to it).
        var (parameters, unsealed) = await UnsealAsync(request.Parameters, request.ExecutionId,
            openReferences: action?.RunnerType != Workflows.WorkflowDefinition.RunnerType, cancellationToken);
        // Masked in its output: its own secrets in every form a program may print them, and every secret the datastore holds.
        var secrets = SecretMasker.Expand((action is null ? [] : SecretMasker.SecretValues(action, parameters)).Concat(unsealed)
            .Concat(await datastore.AllSecretValuesAsync(cancellationToken)));
        if (action is not null && SecretMasker.TooShortToMask(action, parameters) is { Count: > 0 } tooShort)
        {
            logger.ExecutionSecretTooShortToSearch(record.Id, string.Join(", ", tooShort), SecretMasker.MinimumLength);
        }

        // The pack's config as its code sees it in this execution: templated values rendered from the datastore now,
        // its secrets (secret: true keys, encrypted datastore values) masked like the parameters'.
        string? invalid = null;
        var config = new System.Text.Json.Nodes.JsonObject();
        if (action is not null && packConfigs is not null && action.RunnerType != Workflows.WorkflowDefinition.RunnerType)
        {
            try
            {
                var resolved = await packConfigs.ResolveAsync(action.Pack, record.Id, record.User, cancellationToken);
                config = resolved.Values;
                secrets.AddRange(SecretMasker.Expand(resolved.Secrets));
            }
            catch (PackConfigException ex)
            {
                invalid = ex.Message;
            }
        }

        // What was still a secret's reference when the parameters were resolved is checked against its type now.
        if (invalid is null && action is not null && action.RunnerType != Workflows.WorkflowDefinition.RunnerType)
        {
            try
            {
                parameters = ParameterResolver.CheckOpened(action, request.Parameters, parameters);
            }
            catch (ParameterValidationException ex)
            {
                invalid = ex.Message;
            }
        }

        RunnerResult outcome;
        if (action is null)
        {
            outcome = new RunnerResult(ExecutionStatus.Failed, [], $"action '{request.ActionRef}' does not exist");
        }
        else if (invalid is not null)
        {
            outcome = new RunnerResult(ExecutionStatus.Failed, [], invalid);
        }
        else if (!runners.TryGet(action.RunnerType, out var runner))
        {
            outcome = new RunnerResult(ExecutionStatus.Failed, [], $"runner '{action.RunnerType}' is not available on this host");
        }
        else
        {
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var watcher = WatchForCancelAsync(record.Id, cancel, watching.Token);
            // An output_schema that marks result fields secret names secrets only the finished output shows: its
            // live output is held until then, to be masked with them.
            await using var live = new LiveOutput(record.Id, output, secrets, holdUntilEnd: action.OutputSchema is { } schema && HasSecretFields(schema));
            try
            {
                var pack = catalog.Packs.GetValueOrDefault(action.Pack);
                var context = new RunnerContext(record.Id, action, parameters, pack?.Directory) { Pack = pack, Config = config, Output = live.Write, TraceTag = record.TraceTag, ReRunOf = record.ReRunOf, ReRunTasks = record.ReRunTasks, User = record.User };
                outcome = CheckOutput(action, runner, await runner.RunAsync(context, cancel.Token));
                secrets.AddRange(SecretMasker.Expand(OutputSecrets(action, runner, outcome)));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                outcome = new RunnerResult(ExecutionStatus.Canceled, [], "canceled on request; the action's processes were stopped");
            }
            catch (Exception ex)
            {
                logger.ExecutionRunnerThrew(record.Id, request.ActionRef, ex);
                outcome = new RunnerResult(ExecutionStatus.Failed, [], $"{ex.GetType().Name}: {ex.Message}");
            }
            finally
            {
                await watching.CancelAsync();
                await watcher;
            }
        }

        if (outcome.Status == ExecutionStatus.Running)
        {
            // Handed off (a workflow started on its engine): it stays running, and keeps its slots until its end is
            // recorded where it runs (the slots it holds now get the workflow's lease; if it has ended already, they go).
            await concurrency.HoldForWorkflowAsync(record, time.GetUtcNow() + ConcurrencyGate.WorkflowLease,
                () => audit.GetExecutionAsync(record.Id, cancellationToken), cancellationToken);
            return;
        }

        var done = await FinishAsync(record, outcome, secrets, cancellationToken);
        await concurrency.LeaveAsync(record, cancellationToken);
        if (done?.Status == ExecutionStatus.Pending)
        {
            await announcer.AnnounceInquiryAsync(done, cancellationToken);
        }
        else if (done is not null)
        {
            await announcer.AnnounceAsync(action, done, cancellationToken);
            await executions.RetryIfDueAsync(done, cancellationToken);
        }
    }

    /// <summary>
    /// A succeeded run whose output does not match the action's output_schema fails, naming every mismatch (the
    /// result is kept). Text output that is JSON is checked as the JSON it holds.
    /// </summary>
    private static RunnerResult CheckOutput(ActionDefinition action, IActionRunner runner, RunnerResult outcome)
    {
        if (action.OutputSchema is null || outcome.Status != ExecutionStatus.Succeeded)
        {
            return outcome;
        }

        var problems = Json.JsonSchema.Validate(Output(runner, outcome), action.OutputSchema);
        return problems.Count == 0 ? outcome : outcome with
        {
            Status = ExecutionStatus.Failed,
            Error = $"the output{(runner.OutputKey is { } k ? $" ({k})" : "")} does not match the action's output_schema: {string.Join("; ", problems)}",
        };
    }

    // What output_schema describes: the runner's output key (stdout parsed when it is JSON), else the whole result.
    private static System.Text.Json.Nodes.JsonNode? Output(IActionRunner runner, RunnerResult outcome)
    {
        var output = runner.OutputKey is { } key ? outcome.Result[key] : outcome.Result;
        return output is System.Text.Json.Nodes.JsonValue text && text.TryGetValue<string>(out var s) && TryParseJson(s) is { } parsed ? parsed : output;
    }

    private static bool HasSecretFields(System.Text.Json.Nodes.JsonObject schema) =>
        schema["properties"] is System.Text.Json.Nodes.JsonObject properties && properties.Any(p => p.Value is System.Text.Json.Nodes.JsonObject field
            && (field["secret"] is System.Text.Json.Nodes.JsonValue secret && secret.TryGetValue<bool>(out var isSecret) && isSecret || HasSecretFields(field)));

    // StackStorm's secret: true on an output_schema property: that field's value is masked wherever the result shows it.
    private static IEnumerable<string> OutputSecrets(ActionDefinition action, IActionRunner runner, RunnerResult outcome)
    {
        if (action.OutputSchema is not { } schema || !HasSecretFields(schema))
        {
            return [];
        }

        var found = new List<string>();
        void Visit(System.Text.Json.Nodes.JsonNode? value, System.Text.Json.Nodes.JsonObject fieldSchema)
        {
            if (value is not System.Text.Json.Nodes.JsonObject obj || fieldSchema["properties"] is not System.Text.Json.Nodes.JsonObject properties)
            {
                return;
            }

            foreach (var (name, child) in properties)
            {
                if (child is not System.Text.Json.Nodes.JsonObject childSchema || obj[name] is not { } field)
                {
                    continue;
                }

                if (childSchema["secret"] is System.Text.Json.Nodes.JsonValue secret && secret.TryGetValue<bool>(out var isSecret) && isSecret)
                {
                    // The value as a whole, and the strings and numbers inside it (printed with other spacing, those
                    // still match; short ones would mask unrelated text everywhere).
                    found.Add(field is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var s) ? s : field.ToJsonString());
                    found.AddRange(Leaves(field).Where(leaf => leaf.Length >= 4));
                }
                else
                {
                    Visit(field, childSchema);
                }
            }
        }

        Visit(Output(runner, outcome), schema);
        return found.Where(text => text.Length > 0).Distinct();
    }

    private static IEnumerable<string> Leaves(System.Text.Json.Nodes.JsonNode? node) => node switch
    {
        System.Text.Json.Nodes.JsonObject obj => obj.SelectMany(p => Leaves(p.Value)),
        System.Text.Json.Nodes.JsonArray array => array.SelectMany(Leaves),
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue<string>(out var s) => [s],
        System.Text.Json.Nodes.JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number => [v.ToJsonString()],
        _ => [],
    };

    private static System.Text.Json.Nodes.JsonNode? TryParseJson(string text)
    {
        try
        {
            return text.TrimStart() is ['{' or '[', ..] ? System.Text.Json.Nodes.JsonNode.Parse(text) : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>Decrypts the datastore secrets the parameters refer to, only now, just before the runner needs them.</summary>
    private async Task<(System.Text.Json.Nodes.JsonObject Parameters, List<string> Secrets)> UnsealAsync(System.Text.Json.Nodes.JsonObject parameters, string executionId, bool openReferences, CancellationToken cancellationToken)
    {
        var secrets = new List<string>();
        async Task<System.Text.Json.Nodes.JsonNode?> Visit(System.Text.Json.Nodes.JsonNode? node)
        {
            switch (node)
            {
                case System.Text.Json.Nodes.JsonObject obj:
                    var copy = new System.Text.Json.Nodes.JsonObject();
                    foreach (var (key, child) in obj)
                    {
                        copy[key] = await Visit(child);
                    }

                    return copy;
                case System.Text.Json.Nodes.JsonArray array:
                    var items = new System.Text.Json.Nodes.JsonArray();
                    foreach (var child in array)
                    {
                        items.Add(await Visit(child));
                    }

                    return items;
                case System.Text.Json.Nodes.JsonValue value when value.TryGetValue<string>(out var text) && datastore.TryUnsealValue(text, out var opened):
                    // Masked in what the action prints, whichever parameter carried it (a workflow passes secrets on).
                    secrets.Add(opened is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var openedText) ? openedText : opened?.ToJsonString() ?? "");
                    return opened;
                case System.Text.Json.Nodes.JsonValue value when openReferences && value.TryGetValue<string>(out var text):
                    var (plain, found) = await datastore.UnsealAsync(text, executionId, cancellationToken);
                    secrets.AddRange(found);
                    return plain;
                default:
                    return node?.DeepClone();
            }
        }

        return ((System.Text.Json.Nodes.JsonObject)(await Visit(parameters))!, secrets);
    }

    /// <summary>Claims the execution to run it; or returns it as finished; or neither when another worker runs it.</summary>
    private async Task<(ExecutionRecord? Claimed, ExecutionRecord? Finished)> ClaimAsync(ExecutionRequest request, bool takeOver, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            // First try the record as the request carries it (no read); once that proves stale, read the audit.
            var record = attempt == 0 && request.Requested is { Version: not null } carried ? carried.Clone()
                : await audit.GetExecutionAsync(request.ExecutionId, cancellationToken)
                    ?? throw new InvalidOperationException($"execution {request.ExecutionId} is not in the audit yet");
            if (ExecutionStatus.IsTerminal(record.Status))
            {
                logger.ExecutionAlreadyFinished(record.Id, record.Status);
                return (null, record);
            }

            if (record.Status == ExecutionStatus.Pending)
            {
                // An inquiry that already asked: it now waits for a person, not for a runner.
                logger.ExecutionAlreadyFinished(record.Id, record.Status);
                return (null, null);
            }

            var now = time.GetUtcNow();
            var abandoned = takeOver || IsAbandoned(record, request, now)
                || (record.Status is ExecutionStatus.Running or ExecutionStatus.Canceling && record.RunnerType != Workflows.WorkflowDefinition.RunnerType
                    && record.Worker is { } worker && await workers.IsGoneAsync(worker, cancellationToken));
            if (abandoned && record.Status is ExecutionStatus.Running && record.Worker is { } lost && lost != workers.Self)
            {
                logger.ExecutionTakenOver(record.Id, lost);
            }

            if (record.Status == ExecutionStatus.Canceling && abandoned)
            {
                // Its worker died while it was being canceled: it will not run again.
                record.Transition(ExecutionStatus.Canceled, now);
                if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
                {
                    return (null, record);
                }

                continue;
            }

            if (record.Status is ExecutionStatus.Running or ExecutionStatus.Canceling or ExecutionStatus.Paused && !abandoned)
            {
                // A duplicate request while another worker runs it; that worker records the outcome. Unless that
                // worker died: so the request comes back when a live worker would have finished or killed it, and
                // then finds it finished, or abandoned and takes it over. (A workflow ends on its own engine.)
                logger.ExecutionAlreadyRunning(record.Id);
                if (record.RunnerType != Workflows.WorkflowDefinition.RunnerType && !takeOver)
                {
                    var runningSince = record.History.LastOrDefault(h => h.Status == ExecutionStatus.Running)?.At ?? record.StartTimestamp;
                    var givesUpAt = runningSince + RunTimeout(request) + AbandonGrace + TimeSpan.FromSeconds(1);
                    // At most a day at a time (a queue holds a message back for 7 days at most): still running then,
                    // it comes back again. A worker that holds a lease is asked after again a quarter lease (its renewal
                    // period), so its death is noticed within seconds of its lease running out.
                    var wait = givesUpAt - now < MaxRequeueDelay ? givesUpAt - now : MaxRequeueDelay;
                    if (record.Worker is not null && workers.Lease > TimeSpan.Zero && workers.Lease / 4 < wait)
                    {
                        wait = workers.Lease / 4;
                    }

                    await executions.RequeueAsync(request with { Requested = null }, wait, cancellationToken);
                }

                return (null, null);
            }

            var blockedBy = await concurrency.TryEnterAsync(record, now + RunTimeout(request) + AbandonGrace, cancellationToken);
            if (blockedBy is not null)
            {
                var (stop, finished) = await HoldBackAsync(record, request, blockedBy, now, cancellationToken);
                if (stop)
                {
                    return (null, finished);
                }

                continue;
            }

            if (record.Status is ExecutionStatus.Requested or ExecutionStatus.Delayed)
            {
                record.Transition(ExecutionStatus.Scheduled, now);
            }

            record.Transition(ExecutionStatus.Running, now);
            record.Worker = workers.Self;
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                return (record, null);
            }

            await concurrency.LeaveAsync(record, cancellationToken);
        }

        throw new InvalidOperationException($"execution {request.ExecutionId} kept changing while being claimed");
    }

    /// <summary>
    /// A concurrency policy is full: cancel the execution, or mark it delayed and put its request back on the bus to
    /// try again later. Returns whether claiming is over (false: the record changed underneath, read it again).
    /// </summary>
    private async Task<(bool Stop, ExecutionRecord? Finished)> HoldBackAsync(ExecutionRecord record, ExecutionRequest request, ConcurrencyPolicy policy, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (policy.Action == ConcurrencyPolicy.Cancel)
        {
            record.Error = $"canceled by policy {policy.Ref}: {policy.Threshold} execution(s) of {record.ActionRef} were already running";
            record.Transition(ExecutionStatus.Canceled, now);
            if (!await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                return (false, null);
            }

            logger.ExecutionCanceledByPolicy(record.Id, policy.Ref);
            return (true, record);
        }

        if (record.Status != ExecutionStatus.Delayed)
        {
            record.Transition(ExecutionStatus.Delayed, now);
            if (!await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                return (false, null);
            }

            logger.ExecutionDelayedByPolicy(record.Id, policy.Ref);
        }

        await executions.RequeueAsync(request, options.Value.ConcurrencyRecheckInterval, cancellationToken);
        return (true, null);
    }

    // Cancel requests arrive through the audit (any host can make one); the worker running the execution sees them here.
    private async Task WatchForCancelAsync(string executionId, CancellationTokenSource cancel, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(options.Value.CancelPollInterval, time, stop);
                if ((await audit.GetExecutionAsync(executionId, stop))?.Status == ExecutionStatus.Canceling)
                {
                    logger.ExecutionCancelRequested(executionId);
                    await cancel.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The runner finished first.
        }
    }

    /// <summary>
    /// A running execution whose worker died is retried once its own timeout (plus a grace period) has passed since
    /// it started running: by then a live worker would have finished or killed it.
    /// </summary>
    private static bool IsAbandoned(ExecutionRecord record, ExecutionRequest request, DateTimeOffset now)
    {
        var runningSince = record.History.LastOrDefault(h => h.Status == ExecutionStatus.Running)?.At ?? record.StartTimestamp;
        return now - runningSince > RunTimeout(request) + AbandonGrace;
    }

    private static TimeSpan RunTimeout(ExecutionRequest request) =>
        JsonNumbers.TryGetDouble(request.Parameters["timeout"], out var seconds) ? TimeSpan.FromSeconds(seconds) : DefaultAbandonTimeout;

    /// <summary>Records the outcome; returns the finished record, or null when someone else finished it first.</summary>
    private async Task<ExecutionRecord?> FinishAsync(ExecutionRecord record, RunnerResult outcome, IReadOnlyList<string> secrets, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            record.Result = SecretMasker.MaskValues(outcome.Result, secrets);
            record.Error = outcome.Error is null ? null : SecretMasker.MaskText(outcome.Error, secrets);
            record.Transition(outcome.Status, time.GetUtcNow());
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                logger.ExecutionFinished(record.Id, record.ActionRef, record.Status);
                if (ExecutionStatus.IsTerminal(record.Status))
                {
                    Diagnostics.StormMetrics.ExecutionFinished(record);
                }

                return record;
            }

            var current = await audit.GetExecutionAsync(record.Id, cancellationToken);
            if (current is null || ExecutionStatus.IsTerminal(current.Status))
            {
                return null;
            }

            record = current;
        }

        return null;
    }
}
