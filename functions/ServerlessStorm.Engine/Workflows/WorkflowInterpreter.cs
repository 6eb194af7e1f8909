using System.Globalization;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Json;

namespace ServerlessStorm.Engine.Workflows;

/// <summary>What the interpreter asks its host to do.</summary>
public abstract record WorkflowCommand;

/// <summary>
/// Run <see cref="ActionRef"/> with <see cref="Input"/> after <see cref="Delay"/>, and report back with
/// <see cref="WorkflowInterpreter.OnActionCompleted"/> under <see cref="Id"/> (deterministic: task, occurrence,
/// attempt and item).
/// </summary>
public sealed record RunAction(string Id, string Task, string ActionRef, JsonObject Input, TimeSpan Delay, int? ItemIndex) : WorkflowCommand;

/// <summary>The workflow is over: succeeded with its output, or failed with the reasons.</summary>
public sealed record CompleteWorkflow(string Status, JsonObject? Output, IReadOnlyList<string> Errors) : WorkflowCommand;

/// <summary>
/// Orquesta's semantics as a deterministic state machine: the host feeds it the workflow's start and each action's
/// outcome, and it answers with the actions to run next and, at the end, the outcome. It keeps no clock, draws no
/// random numbers and does no I/O, so a Durable orchestrator replaying the same outcomes gets the same commands.
/// </summary>
public sealed class WorkflowInterpreter
{
    private readonly WorkflowDefinition _workflow;
    private readonly Dictionary<string, TaskRun> _running = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _occurrences = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Task, string Route), string> _lastStatus = [];
    // The last finished run of each task by route, for StackStorm's task(name).
    private readonly Dictionary<(string Task, string Route), TaskRun> _lastRun = [];
    // Joins by task and route (see Route).
    private readonly Dictionary<(string Task, string Route), JoinState> _joins = [];
    private readonly Dictionary<string, bool> _inCycle = new(StringComparer.Ordinal);
    private readonly List<(string Task, string Route)> _pendingJoins = [];
    private readonly List<string> _errors = [];
    // As Orquesta's conductor: the contexts are a list — the first is the workflow's (input and vars), each other one what
    // a transition published — and a task's context is the merge of the ones on its path, in order. A join extends its
    // list with each later arrival's, less the workflow's own, so a branch that published nothing cannot overwrite with
    // its older copy what another published (Orquesta's fix for overwritten context variables on join).
    private readonly List<JsonObject> _contexts = [];
    private readonly List<List<int>> _endContexts = [];
    private bool _failing;
    private bool _canceling;
    private bool _completed;

    public WorkflowInterpreter(WorkflowDefinition workflow) => _workflow = workflow;

    /// <summary>Starts with the given input (defaults filled in, vars evaluated) and returns the first commands.</summary>
    public IReadOnlyList<WorkflowCommand> Start(JsonObject input)
    {
        var commands = new List<WorkflowCommand>();
        var context = new JsonObject();
        foreach (var declared in _workflow.Input)
        {
            if (input.TryGetPropertyValue(declared.Name, out var given))
            {
                context[declared.Name] = given?.DeepClone();
            }
            else if (declared.HasDefault)
            {
                // As Orquesta: a default may be an expression over the inputs before it. (A value given at run time is
                // data, never evaluated: Orquesta evaluates it too, but here trigger data is never template source.)
                try
                {
                    context[declared.Name] = declared.DefaultValue is { } templated ? templated.Render(Scope(context, null)) : declared.Default?.DeepClone();
                }
                catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
                {
                    _errors.Add($"input '{declared.Name}': its default did not render: {ex.Message}");
                }
            }
            else
            {
                _errors.Add($"input '{declared.Name}' is required");
            }
        }

        foreach (var (name, value) in input.Where(i => !context.ContainsKey(i.Key)))
        {
            _errors.Add($"input '{name}' is not one the workflow declares ({string.Join(", ", _workflow.Input.Select(i => i.Name))})");
        }

        if (_errors.Count == 0 && !TryAssign(_workflow.Vars, context, Scope(context, null), "vars"))
        {
            _failing = true;
        }

        if (_errors.Count > 0)
        {
            _failing = true;
        }
        else
        {
            _contexts.Add(context);
            foreach (var task in _workflow.StartTasks)
            {
                Schedule(task, [0], commands, from: null, route: "");
            }

            LaunchJoins(0, commands);
        }

        Finish(commands, context);
        return commands;
    }

    /// <summary>Takes the outcome of a <see cref="RunAction"/> and returns what follows.</summary>
    public IReadOnlyList<WorkflowCommand> OnActionCompleted(string id, string status, JsonNode? result, string? error = null)
    {
        var commands = new List<WorkflowCommand>();
        var run = _running.Values.FirstOrDefault(r => r.Outstanding.ContainsKey(id))
            ?? throw new InvalidOperationException($"no action '{id}' is outstanding in this workflow");
        var index = run.Outstanding[id];
        run.Outstanding.Remove(id);
        run.ItemResults[index] = result?.DeepClone();
        run.ItemStatuses[index] = status;
        if (error is not null)
        {
            run.Errors.Add(error);
        }

        StartItems(run, TimeSpan.Zero, commands);
        Finish(commands, null);
        return commands;
    }

    private void Schedule(string taskName, List<int> contexts, List<WorkflowCommand> commands, string? from, string route)
    {
        if (_failing || _canceling)
        {
            return;
        }

        var task = _workflow.Tasks[taskName];
        if (task.Join is { } join)
        {
            if (!_joins.TryGetValue((taskName, route), out var state))
            {
                _joins[(taskName, route)] = state = new JoinState();
            }

            // As Orquesta (since 1.1): a join counts the inbound tasks that transitioned into it, not the transitions —
            // a task with two transitions to the join counts once.
            if (from is not null)
            {
                state.Arrived.Add(from);
            }

            if (state.Launched)
            {
                // As Orquesta's conductor (not its docs, which speak of one instance): once the barrier task has started,
                // a later arrival stages it anew, already satisfied, so it runs again — with that arrival's context only.
                // So join: 2 of three branches runs twice when the third comes after the first two.
                StartTask(task, contexts, route, commands);
                return;
            }

            if (state.Contexts is null)
            {
                state.Contexts = [.. contexts];
            }
            else
            {
                var added = contexts.ToList();
                added.Remove(0);
                state.Contexts.AddRange(added);
            }

            var needed = join.Count ?? _workflow.InboundOf(taskName).Count;
            if (state.Arrived.Count < needed || state.Fired)
            {
                return;
            }

            // It starts once the completing task's transitions are all taken: its other transitions into the join
            // still merge in (Orquesta stages the join and hands it out afterwards).
            state.Fired = true;
            _pendingJoins.Add((taskName, route));
            return;
        }

        StartTask(task, contexts, route, commands);
    }

    private void StartTask(WorkflowTask task, List<int> contexts, string route, List<WorkflowCommand> commands)
    {
        var occurrence = _occurrences[task.Name] = _occurrences.GetValueOrDefault(task.Name) + 1;
        var run = new TaskRun(task, occurrence, Merge(contexts), contexts) { Route = route };
        _running[run.Key] = run;
        Launch(run, commands, initialDelay: true);
    }

    // Starts the joins satisfied since `from` in the pending list.
    private void LaunchJoins(int from, List<WorkflowCommand> commands)
    {
        var satisfied = _pendingJoins.Skip(from).ToList();
        _pendingJoins.RemoveRange(from, satisfied.Count);

        // A transition that failed to evaluate fails the workflow before the join is handed out (Orquesta hands out
        // nothing then); a fail command does not hold it back (its tasks run on fail).
        foreach (var (name, route) in _failing || _canceling ? [] : satisfied)
        {
            var state = _joins[(name, route)];
            state.Launched = true;
            StartTask(_workflow.Tasks[name], state.Contexts!, route, commands);
        }
    }

    // Starts (or, for a retry, starts again) a task's action: every item up to the concurrency, or the one action.
    private void Launch(TaskRun run, List<WorkflowCommand> commands, bool initialDelay, bool commandRetry = false)
    {
        var scope = Scope(run.Context, run);
        TimeSpan delay;
        try
        {
            // The retry engine command runs the task again at once (Orquesta: "up to 3 times with no delay").
            if (initialDelay && run.Task.Retry is { } retry)
            {
                // As Orquesta: retry's count and delay are evaluated once, when the task is first set up, from its context.
                run.RetryCount = WholeNumber(retry.Count, scope, "retry count");
                run.RetryDelay = retry.Delay is null ? TimeSpan.Zero : TimeSpan.FromSeconds(WholeNumber(retry.Delay, scope, "retry delay"));
            }

            delay = initialDelay ? Seconds(run.Task.Delay, scope, "delay") : commandRetry ? TimeSpan.Zero : run.RetryDelay;
            run.Items = run.Task.With is { } with ? ItemsOf(with, scope) : [null];
            // As Orquesta: a concurrency below 1 runs one item at a time.
            run.Concurrency = run.Task.With?.Concurrency is { } c && JsonNumbers.TryGetInt64(c.Render(scope), out var n) ? (int)Math.Clamp(n, 1, int.MaxValue) : int.MaxValue;

            // As Orquesta, every item's action and input render before any item starts (one that does not fails the
            // workflow with nothing started).
            run.Actions = run.Task.Action is null ? [] : [.. run.Items.Select((item, index) => RenderAction(run, item, index))];
        }
        catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException or InvalidOperationException)
        {
            // As Orquesta: a task that does not render never starts, and the workflow fails — its transitions do not
            // run, as there is no outcome for them to look at.
            _errors.Add($"task {run.Task.Name}: {ex.Message}");
            _failing = true;
            _running.Remove(run.Key);
            return;
        }

        run.ItemResults = new JsonNode?[run.Items.Count];
        run.ItemStatuses = new string?[run.Items.Count];
        run.NextItem = 0;
        if (run.Task.Action is null || run.Items.Count == 0)
        {
            // No action (a join or a branching point), or no items: done at once.
            Complete(run, commands);
            return;
        }

        StartItems(run, delay, commands);
    }

    // Keeps up to the concurrency of items running; completes the task when none runs and none is left to start.
    private void StartItems(TaskRun run, TimeSpan delay, List<WorkflowCommand> commands)
    {
        // As Orquesta's task state machine: an item that failed (or was canceled) ends its task as soon as no other item
        // of it is running; the items not started then never run. While other items still run, the task goes on, and
        // keeps starting items up to its concurrency (Orquesta's conductor tests for with-items failures).
        var ended = run.ItemStatuses.Contains(ExecutionStatus.Canceled)
            || (run.Outstanding.Count == 0 && run.ItemStatuses.Any(s => s is not null && s != ExecutionStatus.Succeeded));
        while (!ended && run.NextItem < run.Items.Count && run.Outstanding.Count < run.Concurrency && !_failing && !_canceling)
        {
            commands.Add(RunItem(run, run.NextItem++, delay));
        }

        if (run.Outstanding.Count == 0 && (ended || run.NextItem >= run.Items.Count || _failing || _canceling))
        {
            Complete(run, commands);
        }
    }

    private RunAction RunItem(TaskRun run, int index, TimeSpan delay)
    {
        var id = string.Create(CultureInfo.InvariantCulture, $"{run.Key}.{run.Attempt}{(run.Task.With is null ? "" : $".{index}")}");
        var (actionRef, input) = run.Actions[index];
        run.Outstanding[id] = index;
        return new RunAction(id, run.Task.Name, actionRef, (JsonObject)input.DeepClone(), delay, run.Task.With is null ? null : index);
    }

    private (string ActionRef, JsonObject Input) RenderAction(TaskRun run, JsonNode? item, int index)
    {
        var scope = Scope(run.Context, run, item);
        try
        {
            // input: written as one expression must give the parameters' mapping (Orquesta hands it on as the action's).
            var input = run.Task.Input.Render(scope) switch
            {
                JsonObject parameters => parameters,
                null => [],
                var other => throw new InvalidOperationException($"input gave {other.ToJsonString()}, not a mapping of parameters"),
            };
            var actionRef = Template.LooksLikeTemplate(run.Task.Action!, TemplateDialect.Orquesta)
                ? Template.Parse(run.Task.Action!, TemplateDialect.Orquesta).Render(scope)
                : run.Task.Action!;
            return (actionRef, input);
        }
        catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException or InvalidOperationException)
        {
            throw new InvalidOperationException($"its input could not be rendered{(run.Task.With is null ? "" : $" for item {index}")}: {ex.Message}", ex);
        }
    }

    private void Complete(TaskRun run, List<WorkflowCommand> commands)
    {
        // A task's status is its action's, except that an action that timed out leaves its task failed (Orquesta's task
        // state machine: action_timeout -> failed, so failed() holds and task_status() says 'failed'); with items,
        // canceled when an item was (as Orquesta), else failed when any item did not succeed.
        var status = run.ItemStatuses.All(s => s == ExecutionStatus.Succeeded) ? ExecutionStatus.Succeeded
            : run.Task.With is null && run.ItemStatuses is [{ } only] ? (only == ExecutionStatus.Timeout ? ExecutionStatus.Failed : only)
            : run.ItemStatuses.Contains(ExecutionStatus.Canceled) ? ExecutionStatus.Canceled : ExecutionStatus.Failed;
        run.Status = status;
        run.Result = run.Task.With is null ? run.ItemResults.FirstOrDefault() : new JsonArray([.. run.ItemResults.Select(r => r?.DeepClone())]);
        var scope = Scope(run.Context, run);

        if (run.Task.Retry is { } retry && status != ExecutionStatus.Canceled && run.Retries < run.RetryCount && Holds(retry.When, scope, status is not ExecutionStatus.Succeeded and not ExecutionStatus.Canceled))
        {
            run.Retries++;
            run.Attempt++;
            run.Errors.Clear();
            Launch(run, commands, initialDelay: false);
            return;
        }

        _running.Remove(run.Key);
        _lastStatus[(run.Task.Name, run.Route)] = status;
        _lastRun[(run.Task.Name, run.Route)] = run;
        if (status == ExecutionStatus.Canceled && !_failing)
        {
            // As Orquesta: a task canceled on its own (by a policy, or by hand) cancels its workflow. The tasks still
            // running finish, nothing new starts, and the workflow ends canceled — whatever fails meanwhile.
            _errors.Add($"task {run.Task.Name} canceled{(run.Errors.Count > 0 ? ": " + string.Join("; ", run.Errors) : "")}");
            _canceling = true;
            return;
        }

        // As Orquesta: a failure is remediated by a transition that goes on to a task, or says noop (or retries);
        // publishing alone, or `continue`, carries the failure on to the workflow.
        var remediated = false;
        var handled = false;

        // As Orquesta: the tasks a failing transition names run even when the fail command comes first (do: fail, log),
        // so the workflow fails only once this task's transitions are all taken.
        var failRequested = false;
        var joinsFrom = _pendingJoins.Count;
        foreach (var (transition, transitionIndex) in run.Task.Next.Select((t, i) => (t, i)))
        {
            bool applies;
            try
            {
                applies = Holds(transition.When, scope, true);
            }
            catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
            {
                _errors.Add($"task {run.Task.Name}: the transition's when failed: {ex.Message}");
                _failing = true;
                continue;
            }

            if (!applies)
            {
                continue;
            }

            handled = true;
            var context = (JsonObject)run.Context.DeepClone();
            var published = new JsonObject();
            if (!TryAssign(transition.Publish, context, Scope(context, run), $"task {run.Task.Name} publish", published))
            {
                _failing = true;
                continue;
            }

            var next = run.Contexts;
            if (published.Count > 0)
            {
                _contexts.Add(published);
                next = [.. run.Contexts, _contexts.Count - 1];
            }

            foreach (var target in transition.Do)
            {
                switch (target)
                {
                    case "fail":
                        _errors.Add($"task {run.Task.Name} ({status}): the workflow was failed by its transition");
                        failRequested = true;
                        break;
                    case "retry" when run.CommandRetries < RetryCommandLimit:
                        run.CommandRetries++;
                        run.Attempt++;
                        run.Errors.Clear();
                        _running[run.Key] = run;
                        Launch(run, commands, initialDelay: false, commandRetry: true);
                        remediated = true;
                        break;
                    case "retry" or "continue":
                        break;
                    case "noop":
                        remediated = true;
                        break;
                    default:
                        Schedule(target, next, commands, from: run.Task.Name, Route(run, transitionIndex, target));
                        remediated = true;
                        break;
                }
            }

            if (transition.Do.Count == 0 || !transition.Do.Any(_workflow.Tasks.ContainsKey))
            {
                _endContexts.Add(next);
            }
        }

        LaunchJoins(joinsFrom, commands);
        _failing |= failRequested;
        if (!handled)
        {
            _endContexts.Add(run.Contexts);
        }

        if (status != ExecutionStatus.Succeeded && !remediated)
        {
            _errors.Add($"task {run.Task.Name} {status}{(run.Errors.Count > 0 ? ": " + string.Join("; ", run.Errors) : "")}");
            _failing = true;
        }

    }

    // When nothing runs any more, the workflow is over.
    private void Finish(List<WorkflowCommand> commands, JsonObject? startContext)
    {
        if (_completed || _running.Count > 0)
        {
            return;
        }

        _completed = true;
        foreach (var ((name, _), join) in _joins.Where(j => !j.Value.Fired))
        {
            _errors.Add($"join '{name}' was not satisfied: {join.Arrived.Count} of {_workflow.Tasks[name].Join!.Count?.ToString(CultureInfo.InvariantCulture) ?? _workflow.InboundOf(name).Count.ToString(CultureInfo.InvariantCulture)} inbound task(s) arrived");
            _failing = true;
        }

        // As Orquesta's terminal context: the first ending path whole, then what the others published.
        var final = _endContexts.Count > 0 ? Merge([.. _endContexts[0], .. _endContexts.Skip(1).SelectMany(WithoutWorkflows)])
            : _contexts.Count > 0 ? Merge([0])
            : (JsonObject?)startContext?.DeepClone() ?? [];

        // As Orquesta (render_workflow_output): the output renders from the context reached, whatever the workflow's end —
        // so what a failure published for diagnosis is kept. Each entry renders on its own (each may use those before
        // it); one that fails is left out and its error reported, and a workflow that would have succeeded fails.
        var status = _canceling ? ExecutionStatus.Canceled : _failing ? ExecutionStatus.Failed : ExecutionStatus.Succeeded;
        var output = new JsonObject();
        var rolling = (JsonObject)final.DeepClone();
        var rendered = true;
        foreach (var entry in _workflow.Output)
        {
            try
            {
                var value = entry.Value.Render(Scope(rolling, null));
                rolling[entry.Name] = value?.DeepClone();
                output[entry.Name] = value;
            }
            catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
            {
                _errors.Add($"output '{entry.Name}': {ex.Message}");
                rendered = false;
            }
        }

        if (!rendered && status == ExecutionStatus.Succeeded)
        {
            status = ExecutionStatus.Failed;
        }

        // Orquesta keeps no output when none rendered (an empty one included).
        commands.Add(new CompleteWorkflow(status, output.Count > 0 ? output : null, [.. _errors]));
    }

    // Evaluates name: value pairs in order into target; each may use the ones before it (through ctx).
    private bool TryAssign(IReadOnlyList<NamedExpression> entries, JsonObject target, TemplateScope scope, string what, JsonObject? alsoInto = null)
    {
        foreach (var entry in entries)
        {
            try
            {
                var value = entry.Value.Render(scope);
                target[entry.Name] = value;
                if (alsoInto is not null)
                {
                    alsoInto[entry.Name] = value?.DeepClone();
                }
            }
            catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
            {
                _errors.Add($"{what} '{entry.Name}': {ex.Message}");
                return false;
            }
        }

        return true;
    }

    // As Orquesta's routes: a task that several transitions lead to without a join (a split) runs once per arrival,
    // and each of those runs, with all that follows it, is on a route of its own — so a join after a split waits for
    // the branches of its own route. A task in a cycle keeps its route.
    private string Route(TaskRun run, int transitionIndex, string target)
    {
        var task = _workflow.Tasks[target];
        var inbound = _workflow.Tasks.Values.Sum(t => t.Next.Count(n => n.Do.Contains(target)));
        if (task.Join is not null || inbound <= 1 || InCycle(target))
        {
            return run.Route;
        }

        var step = string.Create(CultureInfo.InvariantCulture, $"{run.Task.Name}__t{transitionIndex}");
        return run.Route.Split('|').Contains(step) ? run.Route : run.Route.Length == 0 ? step : $"{run.Route}|{step}";
    }

    private bool InCycle(string task)
    {
        if (!_inCycle.TryGetValue(task, out var inCycle))
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var queue = new Queue<string>(Targets(task));
            while (queue.TryDequeue(out var next) && !inCycle)
            {
                inCycle = next == task;
                if (seen.Add(next))
                {
                    foreach (var after in Targets(next))
                    {
                        queue.Enqueue(after);
                    }
                }
            }

            _inCycle[task] = inCycle;
        }

        return inCycle;

        IEnumerable<string> Targets(string name) => _workflow.Tasks[name].Next.SelectMany(n => n.Do).Where(_workflow.Tasks.ContainsKey);
    }

    private JsonObject Merge(IEnumerable<int> contexts)
    {
        var merged = new JsonObject();
        foreach (var index in contexts)
        {
            foreach (var (key, value) in _contexts[index])
            {
                merged[key] = value?.DeepClone();
            }
        }

        return merged;
    }

    // A path's contexts less the workflow's own (the first occurrence, as Orquesta removes it).
    private static List<int> WithoutWorkflows(List<int> contexts)
    {
        var rest = contexts.ToList();
        rest.Remove(0);
        return rest;
    }

    private TemplateScope Scope(JsonObject context, TaskRun? run, JsonNode? item = null) =>
        new() { Workflow = new Functions(this, context, run, item) };

    private static bool Holds(Template? condition, TemplateScope scope, bool otherwise) =>
        condition is null ? otherwise : Py.Truthy(condition.EvaluateValue(scope));

    // As Orquesta, a delay is a whole number of seconds; anything else fails the task's rendering.
    private static TimeSpan Seconds(TemplatedValue? value, TemplateScope scope, string what) =>
        value is null ? TimeSpan.Zero : TimeSpan.FromSeconds(WholeNumber(value, scope, what, " of seconds"));

    private static long WholeNumber(TemplatedValue value, TemplateScope scope, string what, string unit = "")
    {
        var rendered = value.Render(scope);
        return JsonNumbers.TryGetInt64(rendered, out var number) && number >= 0
            ? number
            : throw new InvalidOperationException($"{what} must be a whole number{unit}, got {rendered?.ToJsonString() ?? "null"}");
    }

    private static List<JsonNode?> ItemsOf(WithItems with, TemplateScope scope)
    {
        var value = with.Items.Evaluate(scope);
        if (value is not JsonArray list)
        {
            throw new InvalidOperationException($"with items must be a list, got {value?.ToJsonString() ?? "null"}");
        }

        if (with.Variables.Count <= 1)
        {
            return [.. list.Select(i => with.Variables.Count == 1 ? new JsonObject { [with.Variables[0]] = i?.DeepClone() } : i?.DeepClone())];
        }

        // "x, y in <% zip(xs, ys) %>": each item is a list bound to the names in order.
        return [.. list.Select(i => (JsonNode?)new JsonObject(with.Variables.Select((v, k) => KeyValuePair.Create(v, (i as JsonArray)?.ElementAtOrDefault(k)?.DeepClone()))))];
    }

    private const int RetryCommandLimit = 3;

    // Orquesta's unset status is the text "null".
    private const string Unset = "null";

    private sealed class TaskRun(WorkflowTask task, int occurrence, JsonObject context, List<int> contexts)
    {
        public WorkflowTask Task { get; } = task;

        public string Key { get; } = string.Create(CultureInfo.InvariantCulture, $"{task.Name}.{occurrence}");

        public JsonObject Context { get; } = context;

        /// <summary>The contexts <see cref="Context"/> merges (indexes into the workflow's list).</summary>
        public List<int> Contexts { get; } = contexts;

        /// <summary>The route it runs on: "" from the start, else the split transitions taken (see Route()).</summary>
        public string Route { get; init; } = "";

        public int Attempt { get; set; } = 1;

        /// <summary>retry's count and delay, evaluated when the task was set up.</summary>
        public long RetryCount { get; set; }

        public TimeSpan RetryDelay { get; set; }

        /// <summary>Times its retry ran it again.</summary>
        public int Retries { get; set; }

        /// <summary>Times the <c>retry</c> engine command ran it again (Orquesta allows 3).</summary>
        public int CommandRetries { get; set; }

        public List<JsonNode?> Items { get; set; } = [];

        public int Concurrency { get; set; } = int.MaxValue;

        public int NextItem { get; set; }

        public Dictionary<string, int> Outstanding { get; } = new(StringComparer.Ordinal);

        public JsonNode?[] ItemResults { get; set; } = [];

        public string?[] ItemStatuses { get; set; } = [];

        public List<string> Errors { get; } = [];

        /// <summary>Each item's action ref and input, rendered when the task (or its retry) starts.</summary>
        public List<(string ActionRef, JsonObject Input)> Actions { get; set; } = [];

        public string? Status { get; set; }

        public JsonNode? Result { get; set; }
    }

    private sealed class JoinState
    {
        public HashSet<string> Arrived { get; } = new(StringComparer.Ordinal);

        public bool Fired { get; set; }

        /// <summary>Its barrier task has started (it is started once the transitions that satisfied it are all taken).</summary>
        public bool Launched { get; set; }

        public List<int>? Contexts { get; set; }
    }

    // ctx(), result(), item(), succeeded(), … for one evaluation.
    private sealed class Functions(WorkflowInterpreter interpreter, JsonObject context, TaskRun? run, JsonNode? item) : IWorkflowFunctions
    {
        public object? Context(string? name) =>
            name is null ? Py.FromJson(context) : context.TryGetPropertyValue(name, out var value) ? Py.FromJson(value)
                : throw new ExpressionEvaluationException($"ctx has no '{name}' (it has: {string.Join(", ", context.Select(c => c.Key))})", 0);

        public object? Result() => Py.FromJson(run?.Result);

        public object? Item(string? name) => name is null
            ? Py.FromJson(item is JsonObject named && run?.Task.With?.Variables.Count > 0 ? named : item)
            : item is JsonObject bound && bound.TryGetPropertyValue(name, out var value) ? Py.FromJson(value)
                : throw new ExpressionEvaluationException($"item has no '{name}'", 0);

        public bool Succeeded() => run?.Status == ExecutionStatus.Succeeded;

        public bool Failed() => run?.Status is not null and not ExecutionStatus.Succeeded;

        public bool Completed() => run?.Status is not null;

        // As Orquesta: the task's status on the current route, else on the routes it split from (longest first), else
        // the unset status, the text "null".
        public string? TaskStatus(string taskName) => OnRoute(interpreter._lastStatus, taskName) ?? Unset;

        // StackStorm's task(name): the task's last finished run on this route (or one it split from); the current task
        // when no name is given. Execution ids and timestamps are not part of it here.
        public object? Task(string? taskName)
        {
            var name = taskName ?? run?.Task.Name ?? throw new ExpressionEvaluationException("task() names no task and is not evaluated in one", 0);
            var found = OnRoute(interpreter._lastRun, name)
                ?? throw new ExpressionEvaluationException($"Unable to find task execution for \"{name}\" (it has not finished on this route)", 0);
            return Py.FromJson(new JsonObject
            {
                ["task_name"] = found.Task.Name,
                ["task_id"] = found.Task.Name,
                ["route"] = found.Route,
                ["result"] = found.Result?.DeepClone(),
                ["status"] = found.Status,
            });
        }

        private T? OnRoute<T>(Dictionary<(string Task, string Route), T> byRoute, string taskName) where T : class
        {
            var steps = (run?.Route ?? "").Split('|', StringSplitOptions.RemoveEmptyEntries);
            for (var length = steps.Length; length >= 0; length--)
            {
                if (byRoute.TryGetValue((taskName, string.Join('|', steps[..length])), out var found))
                {
                    return found;
                }
            }

            return null;
        }
    }
}
