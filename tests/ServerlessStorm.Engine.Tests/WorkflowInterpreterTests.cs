using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Engine.Tests;

/// <summary>Orquesta's language features, each against its meaning, on the interpreter driven by scripted action outcomes.</summary>
public sealed class WorkflowInterpreterTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("storm-wf-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private WorkflowDefinition Load(string yaml)
    {
        var path = Path.Combine(_folder, $"wf{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        var (definition, problems) = WorkflowLoader.Load(path, "wf.yaml");
        Assert.Empty(problems);
        return definition!;
    }

    private sealed record Run(CompleteWorkflow Done, List<RunAction> Actions, Dictionary<string, int> MaxInFlight, List<string> Trace);

    /// <summary>Runs the workflow, answering each action (oldest first) with <paramref name="act"/>.</summary>
    private static Run Drive(WorkflowDefinition workflow, JsonObject input, Func<RunAction, (string Status, JsonNode? Result)> act)
    {
        var interpreter = new WorkflowInterpreter(workflow);
        var pending = new List<RunAction>();
        var all = new List<RunAction>();
        var maxInFlight = new Dictionary<string, int>();
        var trace = new List<string>();
        CompleteWorkflow? done = null;
        void Take(IReadOnlyList<WorkflowCommand> commands)
        {
            foreach (var command in commands)
            {
                trace.Add(command is RunAction r ? $"run {r.Id} {r.ActionRef} {r.Input.ToJsonString()} delay={r.Delay.TotalSeconds}" : $"done {((CompleteWorkflow)command).Status} {((CompleteWorkflow)command).Output?.ToJsonString()}");
                switch (command)
                {
                    case RunAction run:
                        pending.Add(run);
                        all.Add(run);
                        maxInFlight[run.Task] = Math.Max(maxInFlight.GetValueOrDefault(run.Task), pending.Count(p => p.Task == run.Task));
                        break;
                    case CompleteWorkflow complete:
                        Assert.Null(done);
                        done = complete;
                        break;
                }
            }
        }

        Take(interpreter.Start(input));
        while (pending.Count > 0)
        {
            var next = pending[0];
            pending.RemoveAt(0);
            var (status, result) = act(next);
            Take(interpreter.OnActionCompleted(next.Id, status, result, status == ExecutionStatus.Succeeded ? null : $"{next.Task} said no"));
        }

        Assert.NotNull(done);
        trace.AddRange(done!.Errors.Select(e => "error: " + e));
        return new Run(done!, all, maxInFlight, trace);
    }

    private static (string, JsonNode?) Echo(RunAction a) => (ExecutionStatus.Succeeded, new JsonObject { ["stdout"] = a.Input["message"]?.DeepClone() });

    [Fact]
    public void ATaskCanceledOnItsOwn_CancelsTheWorkflow_TheOthersFinish_AndNothingNewStarts()
    {
        // Orquesta: a canceled task puts its workflow in canceling; its transitions (even when: failed) do not run.
        var workflow = Load("""
            version: 1.0
            tasks:
              start:
                action: core.noop
                next: [{do: [quick, slow]}]
              quick:
                action: core.noop
                next: [{when: "<% succeeded() %>", do: after_quick}, {when: "<% failed() %>", do: cleanup}]
              slow:
                action: core.noop
                next: [{do: after_slow}]
              after_quick: {action: core.noop}
              after_slow: {action: core.noop}
              cleanup: {action: core.noop}
            """);

        var run = Drive(workflow, [], a => (a.Task == "quick" ? ExecutionStatus.Canceled : ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Canceled, run.Done.Status);
        Assert.Equal(["start", "quick", "slow"], run.Actions.Select(a => a.Task));
        Assert.Equal(["task quick canceled: quick said no"], run.Done.Errors);
    }

    [Fact]
    public void ACanceledTask_IsNotRetried()
    {
        // Orquesta never retries a canceled task, whatever its retry's when says.
        var workflow = Load("""
            version: 1.0
            tasks:
              once:
                action: core.noop
                retry: {count: 2, when: "<% not succeeded() %>"}
            """);

        var run = Drive(workflow, [], _ => (ExecutionStatus.Canceled, null));

        Assert.Equal(ExecutionStatus.Canceled, run.Done.Status);
        Assert.Single(run.Actions);
    }

    [Fact]
    public void AWithItemsTask_WithACanceledItem_IsCanceled()
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              each:
                with: <% [1, 2, 3] %>
                action: core.noop
                next: [{when: "<% failed() %>", do: cleanup}]
              cleanup: {action: core.noop}
            """);
        var items = 0;

        var run = Drive(workflow, [], a => (a.Task == "each" && ++items == 2 ? ExecutionStatus.Canceled : ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Canceled, run.Done.Status);
        Assert.DoesNotContain(run.Actions, a => a.Task == "cleanup");
    }

    [Fact]
    public void AFailureBeforeACancel_FailsTheWorkflow_AsOrquestasFailedStateKeeps()
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              start:
                action: core.noop
                next: [{do: [first, second]}]
              first: {action: core.noop}
              second: {action: core.noop}
            """);

        var run = Drive(workflow, [], a => (a.Task switch { "first" => ExecutionStatus.Failed, "second" => ExecutionStatus.Canceled, _ => ExecutionStatus.Succeeded }, null));

        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
    }

    [Fact]
    public void Sequence_PublishesIntoTheContext_AndTheOutputReadsIt()
    {
        var workflow = Load("""
            version: 1.0
            input: [name, {greeting: Hello}]
            vars: [{who: "<% ctx(name) %>"}]
            tasks:
              greet:
                action: core.echo
                input: {message: "<% ctx(greeting) %> <% ctx(who) %>"}
                next:
                  - when: <% succeeded() %>
                    publish: [{said: "<% result().stdout %>"}]
                    do: shout
              shout:
                action: core.echo
                input: {message: "{{ ctx('said') | upper }}!"}
                next:
                  - publish: {loud: "<% result().stdout %>"}
            output: [{message: "<% ctx(loud) %>"}, {length: "<% len(ctx(loud)) %>"}]
            """);

        var run = Drive(workflow, new JsonObject { ["name"] = "storm" }, Echo);

        Assert.Equal(["greet", "shout"], run.Actions.Select(a => a.Task));
        Assert.Equal("HELLO STORM!", run.Actions[1].Input["message"]!.GetValue<string>());
        Assert.Empty(run.Done.Errors);
        Assert.Equal("""{"message":"HELLO STORM!","length":12}""", run.Done.Output!.ToJsonString());
    }

    [Fact]
    public void MissingInput_AndUnknownInput_FailTheWorkflowBeforeAnyTask()
    {
        var workflow = Load("version: 1.0\ninput: [name]\ntasks:\n  t: {action: core.noop}\n");

        var run = Drive(workflow, new JsonObject { ["nmae"] = "typo" }, Echo);

        Assert.Empty(run.Actions);
        Assert.Equal(["input 'name' is required", "input 'nmae' is not one the workflow declares (name)"], run.Done.Errors);
    }

    [Theory]
    [InlineData(ExecutionStatus.Succeeded, "on_success")]
    [InlineData(ExecutionStatus.Failed, "on_failure")]
    public void Branches_FollowTheTransitionsWhoseWhenHolds(string outcome, string expected)
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              check:
                action: core.local
                next:
                  - when: <% succeeded() %>
                    do: on_success
                  - when: <% failed() %>
                    do: [on_failure]
                  - when: <% completed() %>
                    do: always
              on_success: {action: core.noop}
              on_failure: {action: core.noop}
              always: {action: core.noop}
            """);

        var run = Drive(workflow, [], a => a.Task == "check" ? (outcome, null) : (ExecutionStatus.Succeeded, null));

        Assert.Equal(["check", expected, "always"], run.Actions.Select(a => a.Task));
        Assert.Equal(ExecutionStatus.Succeeded, run.Done.Status); // a handled failure does not fail the workflow
    }

    [Fact]
    public void JoinAll_WaitsForEveryBranch_AndSeesWhatEachPublished_ParallelBranchesDoNot()
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              start:
                action: core.noop
                next: [{do: [left, right]}]
              left:
                action: core.noop
                next: [{publish: [{l: 1}], do: peek_left}]
              peek_left:
                action: core.echo
                input: {message: "<% ctx().get('r', 'no r here') %>"}
                next: [{do: joined}]
              right:
                action: core.noop
                next: [{publish: [{r: 2}], do: joined}]
              joined:
                join: all
                action: core.echo
                input: {message: "<% ctx(l) + ctx(r) %>"}
            output: [{sum: "<% ctx(l) + ctx(r) %>"}]
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal("no r here", run.Actions.Single(a => a.Task == "peek_left").Input["message"]!.GetValue<string>());
        Assert.Single(run.Actions, a => a.Task == "joined");
        Assert.Equal(3L, run.Actions.Single(a => a.Task == "joined").Input["message"]!.GetValue<long>());
        Assert.Equal(3L, run.Done.Output!["sum"]!.GetValue<long>());
    }

    [Fact]
    public void JoinCount_RunsWhenThatManyHaveArrived_WithWhatTheyPublished()
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              fan: {action: core.noop, next: [{do: [a, b]}]}
              a: {action: core.noop, next: [{publish: pa=1, do: first}]}
              b: {action: core.noop, next: [{publish: pb=2, do: first}]}
              first: {join: 1, action: core.echo message=<% ctx().get('pa') %>}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(["fan", "a", "b", "first", "first"], run.Actions.Select(a => a.Task)); // b came after first started
        Assert.Equal(1L, run.Actions[3].Input["message"]!.GetValue<long>());
        Assert.Equal(ExecutionStatus.Succeeded, run.Done.Status);
    }

    [Fact]
    public void WithItems_RespectsConcurrency_KeepsResultsInItemOrder_AndBindsNamedItems()
    {
        var workflow = Load("""
            version: 1.0
            input: [hosts]
            tasks:
              ping:
                with: {items: "host in <% ctx(hosts) %>", concurrency: 2}
                action: core.echo
                input: {message: "<% item(host) %>"}
                next: [{publish: [{seen: "<% result() %>"}], do: all_at_once}]
              all_at_once:
                with: <% ctx(hosts) %>
                action: core.echo
                input: {message: "{{ item() }}"}
            output: [{seen: "<% ctx(seen) %>"}]
            """);

        var run = Drive(workflow, new JsonObject { ["hosts"] = new JsonArray("a", "b", "c", "d", "e") }, Echo);

        Assert.Empty(run.Done.Errors);
        Assert.Equal(2, run.MaxInFlight["ping"]);
        Assert.Equal(5, run.MaxInFlight["all_at_once"]);
        Assert.Equal(["ping.1.1.0", "ping.1.1.1", "ping.1.1.2", "ping.1.1.3", "ping.1.1.4"], run.Actions.Where(a => a.Task == "ping").Select(a => a.Id));
        Assert.Equal(["a", "b", "c", "d", "e"], run.Done.Output!["seen"]!.AsArray().Select(r => r!["stdout"]!.GetValue<string>()));
    }

    [Fact]
    public void WithItems_OneFailedItem_FailsTheTask_AndAnEmptyListSucceedsAtOnce()
    {
        var workflow = Load("""
            version: 1.0
            input: [xs]
            tasks:
              each:
                with: <% ctx(xs) %>
                action: core.echo
                input: {message: "<% item() %>"}
            """);

        var failed = Drive(workflow, new JsonObject { ["xs"] = new JsonArray(1, 2, 3) }, a => a.ItemIndex == 1 ? (ExecutionStatus.Failed, null) : Echo(a));
        var empty = Drive(workflow, new JsonObject { ["xs"] = new JsonArray() }, Echo);

        Assert.Equal(ExecutionStatus.Failed, failed.Done.Status);
        Assert.StartsWith("task each failed", Assert.Single(failed.Done.Errors), StringComparison.Ordinal);
        Assert.Empty(empty.Actions);
        Assert.Equal(ExecutionStatus.Succeeded, empty.Done.Status);
    }

    [Fact]
    public void Retry_RunsAgainWithItsDelay_UpToItsCount()
    {
        var workflow = Load("""
            version: 1.0
            input: [succeed_on]
            tasks:
              flaky:
                action: core.local
                retry: {when: <% failed() %>, count: 3, delay: 2}
            """);
        var attempts = 0;

        var third = Drive(workflow, new JsonObject { ["succeed_on"] = 3 }, _ => ++attempts >= 3 ? (ExecutionStatus.Succeeded, null) : (ExecutionStatus.Failed, null));
        var never = Drive(workflow, new JsonObject { ["succeed_on"] = 99 }, _ => (ExecutionStatus.Failed, null));

        Assert.Equal(["flaky.1.1", "flaky.1.2", "flaky.1.3"], third.Actions.Select(a => a.Id));
        Assert.Equal([0.0, 2.0, 2.0], third.Actions.Select(a => a.Delay.TotalSeconds));
        Assert.Equal(ExecutionStatus.Succeeded, third.Done.Status);
        Assert.Equal(4, never.Actions.Count); // the first run and 3 retries
        Assert.Equal(ExecutionStatus.Failed, never.Done.Status);
    }

    [Fact]
    public void EngineCommands_FailNoopAndRetry_AndAnUnhandledFailureFailsTheWorkflow()
    {
        var workflow = Load("""
            version: 1.0
            input: [mode]
            tasks:
              step:
                action: core.local
                delay: 5
                next:
                  - when: <% failed() and ctx(mode) = 'fail' %>
                    do: fail
                  - when: <% failed() and ctx(mode) = 'noop' %>
                    do: noop
                  - when: <% failed() and ctx(mode) = 'retry' and task_status(step) = 'failed' %>
                    do: retry
            """);
        var tries = 0;

        var fail = Drive(workflow, new JsonObject { ["mode"] = "fail" }, _ => (ExecutionStatus.Failed, null));
        var noop = Drive(workflow, new JsonObject { ["mode"] = "noop" }, _ => (ExecutionStatus.Failed, null));
        var retry = Drive(workflow, new JsonObject { ["mode"] = "retry" }, _ => ++tries < 2 ? (ExecutionStatus.Failed, null) : (ExecutionStatus.Succeeded, null));
        var unhandled = Drive(workflow, new JsonObject { ["mode"] = "other" }, _ => (ExecutionStatus.Failed, null));

        Assert.Equal(5, fail.Actions[0].Delay.TotalSeconds);
        Assert.Equal(ExecutionStatus.Failed, fail.Done.Status);
        Assert.Contains("the workflow was failed by its transition", fail.Done.Errors[0], StringComparison.Ordinal);
        Assert.Equal(ExecutionStatus.Succeeded, noop.Done.Status);
        Assert.Equal(2, retry.Actions.Count);
        Assert.Equal(ExecutionStatus.Succeeded, retry.Done.Status);
        Assert.Equal("task step failed: step said no", Assert.Single(unhandled.Done.Errors));
    }

    [Theory]
    [InlineData("publish: [{why: <% result().stderr %>}]", ExecutionStatus.Failed)]             // no do: continue, the default
    [InlineData("{publish: [{why: <% result().stderr %>}], do: continue}", ExecutionStatus.Failed)]
    [InlineData("{publish: [{why: <% result().stderr %>}], do: noop}", ExecutionStatus.Succeeded)] // remediated
    [InlineData("{publish: [{why: <% result().stderr %>}], do: cleanup}", ExecutionStatus.Succeeded)] // a remediation task
    public void AFailureIsRemediatedOnlyByNoopOrATask_ContinueCarriesItToTheWorkflow(string transition, string expected)
    {
        var next = transition.StartsWith('{') ? $"[{{when: <% failed() %>, {transition[1..^1]}}}]" : $"[{{when: <% failed() %>, {transition}}}]";
        var workflow = Load($$"""
            version: 1.0
            tasks:
              step:
                action: core.local
                next: {{next}}
              cleanup: {action: core.noop}
            output: [{why: <% ctx(why) %>}]
            """);

        var run = Drive(workflow, [], a => a.Task == "step" ? (ExecutionStatus.Failed, new JsonObject { ["stderr"] = "disk full" }) : (ExecutionStatus.Succeeded, null));

        Assert.Equal(expected, run.Done.Status);
        if (expected == ExecutionStatus.Failed)
        {
            Assert.StartsWith("task step failed", Assert.Single(run.Done.Errors), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void RetryCommand_RunsTheTaskAgainAtMostThreeTimes()
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              step:
                action: core.local
                next: [{when: <% failed() %>, do: retry}]
            """);

        var run = Drive(workflow, [], _ => (ExecutionStatus.Failed, null));

        Assert.Equal(4, run.Actions.Count); // the first run and three retries
        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
    }

    [Fact]
    public void SameOutcomes_GiveTheSameCommands_EveryTime()
    {
        var workflow = Load("""
            version: 1.0
            input: [xs]
            tasks:
              fan:
                with: {items: "x in <% ctx(xs) %>", concurrency: 3}
                action: core.echo
                input: {message: "<% item(x) * 2 %>"}
                retry: {count: 1}
                next: [{publish: [{doubled: "<% result() %>"}], do: [a, b]}]
              a: {action: core.noop, next: [{do: z}]}
              b: {action: core.noop, next: [{do: z}]}
              z: {join: all, action: core.echo, input: {message: "<% len(ctx(doubled)) %>"}}
            """);
        var input = new JsonObject { ["xs"] = new JsonArray(1, 2, 3, 4, 5, 6, 7) };
        (string, JsonNode?) Outcome(RunAction a) => a.Id == "fan.1.1.4" ? (ExecutionStatus.Failed, null) : Echo(a);

        var first = Drive(workflow, input, Outcome);
        var second = Drive(workflow, input, Outcome);

        Assert.Equal(first.Trace, second.Trace);
        Assert.Empty(first.Done.Errors);
        Assert.Contains("run fan.1.2.4", string.Join("\n", first.Trace), StringComparison.Ordinal);
    }

    [Fact]
    public void Delay_IsDueFromWhenTheTaskIsScheduled_RetryDelayReplacesIt_AndWithItemsDelaysOnlyTheFirstBatch()
    {
        // Orquesta: a task's delay holds its action back that many seconds from when the task is due; a retry waits
        // retry.delay instead (0 when none, whatever the task's delay); with items under a concurrency, StackStorm
        // delays the first `concurrency` items only — the later ones start as earlier ones end.
        var workflow = Load("""
            version: 1.0
            input: [wait]
            tasks:
              first:
                action: core.noop
                delay: <% ctx(wait) %>
                next: [{do: [flaky, undelayed_retry, each]}]
              flaky:
                action: core.local
                delay: 7
                retry: {count: 1, delay: 2}
              undelayed_retry:
                action: core.local
                delay: 4
                retry: {count: 1}
              each:
                with: {items: "<% [1, 2, 3, 4] %>", concurrency: 2}
                action: core.noop
                delay: 3
            """);
        var tries = new Dictionary<string, int>();

        var run = Drive(workflow, new JsonObject { ["wait"] = 5 }, a => (tries[a.Task] = tries.GetValueOrDefault(a.Task) + 1) == 1 && a.Task is "flaky" or "undelayed_retry"
            ? (ExecutionStatus.Failed, null) : (ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Succeeded, run.Done.Status);
        var delays = run.Actions.Select(a => $"{a.Id}={a.Delay.TotalSeconds}").ToList();
        Assert.Equal(["first.1.1=5", "flaky.1.1=7", "undelayed_retry.1.1=4", "each.1.1.0=3", "each.1.1.1=3", "flaky.1.2=2", "undelayed_retry.1.2=0", "each.1.1.2=0", "each.1.1.3=0"], delays);
    }

    [Theory]
    [InlineData("delay: 1.5", "tasks.t.delay: must be a whole number (0 or more) or an expression, got 1.5")]
    [InlineData("delay: -1", "tasks.t.delay: must be a whole number (0 or more) or an expression, got -1")]
    [InlineData("retry: {count: 1, delay: soon}", "tasks.t.retry.delay: must be a whole number (0 or more) or an expression, got \"soon\"")]
    public void Delay_IsAWholeNumberOfSeconds_AsOrquestasSchemaSays(string field, string problem)
    {
        var path = Path.Combine(_folder, "delay.yaml");
        File.WriteAllText(path, $"version: 1.0\ntasks:\n  t:\n    action: core.noop\n    {field}\n");

        var (_, problems) = WorkflowLoader.Load(path, "delay.yaml");

        Assert.Contains(problem, Assert.Single(problems).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ADelayThatRendersToNoWholeNumber_FailsTheWorkflow_WithoutRunningTheTaskOrItsTransitions()
    {
        // Orquesta: "The value of task delay is not type of integer." — raised while getting the next tasks, which fails
        // the workflow; the task never starts, so its transitions (even when: failed) do not run.
        var workflow = Load("""
            version: 1.0
            tasks:
              t:
                action: core.noop
                delay: <% 'soon' %>
                next: [{when: <% failed() %>, do: cleanup}]
              cleanup: {action: core.noop}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Empty(run.Actions);
        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
        Assert.Equal(["task t: delay must be a whole number of seconds, got \"soon\""], run.Done.Errors);
    }

    [Fact]
    public void AFailedWorkflow_RendersItsOutputFromTheContextItReached_SoWhatTheFailurePublishedIsKept()
    {
        // Orquesta renders the output for every completed status (succeeded, failed, canceled, …), from the terminal
        // tasks' context: a failure that publishes its diagnosis and fails the workflow keeps that diagnosis.
        var workflow = Load("""
            version: 1.0
            vars: [{stage: starting}]
            tasks:
              build:
                action: core.local
                next:
                  - when: <% succeeded() %>
                    publish: [{stage: built}]
                    do: deploy
              deploy:
                action: core.local
                next:
                  - when: <% failed() %>
                    publish: [{why: <% result().stderr %>}, {stage: deploying}]
                    do: fail
            output:
              - stage: <% ctx(stage) %>
              - why: <% ctx(why) %>
            """);

        var run = Drive(workflow, [], a => a.Task == "deploy" ? (ExecutionStatus.Failed, new JsonObject { ["stderr"] = "disk full" }) : (ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
        Assert.Equal("""{"stage":"deploying","why":"disk full"}""", run.Done.Output!.ToJsonString());
    }

    [Fact]
    public void ACanceledWorkflow_RendersItsOutputToo_AndAnEntryThatFailsIsLeftOutWithoutChangingTheStatus()
    {
        // Orquesta: an output entry that does not render is left out and its error logged; the status becomes failed
        // unless the workflow was canceled (or expired, abandoned).
        var workflow = Load("""
            version: 1.0
            tasks:
              step:
                action: core.noop
                next: [{publish: [{seen: yes}]}]
            output: [{seen: <% ctx(seen) %>}, {missing: <% ctx(nowhere) %>}, {again: <% ctx(seen) %>}]
            """);

        var canceled = Drive(workflow, [], _ => (ExecutionStatus.Canceled, null));
        var succeeded = Drive(workflow, [], _ => (ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Canceled, canceled.Done.Status);
        Assert.Equal(ExecutionStatus.Failed, succeeded.Done.Status);
        Assert.Equal("""{"seen":true,"again":true}""", succeeded.Done.Output!.ToJsonString());
        Assert.Contains(succeeded.Done.Errors, e => e.StartsWith("output 'missing':", StringComparison.Ordinal));
    }

    [Fact]
    public void WithItems_AFailedItem_EndsTheTaskOnceNoOtherItemRuns_TheItemsNotStartedNeverRun()
    {
        // Orquesta's task state machine: an item that fails while no other item of the task is running fails the task
        // at once (action_failed_task_dormant_items_incomplete), so with concurrency 1 the items after it never start.
        var workflow = Load("""
            version: 1.0
            tasks:
              each:
                with: {items: "<% [1, 2, 3, 4, 5] %>", concurrency: 1}
                action: core.noop
            """);

        var run = Drive(workflow, [], a => a.ItemIndex == 1 ? (ExecutionStatus.Failed, null) : (ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
        Assert.Equal([0, 1], run.Actions.Select(a => a.ItemIndex ?? -1));
    }

    [Fact]
    public void WithItems_AFailedItemWhileOthersRun_LetsTheTaskGoOnStartingItems_ThenFails()
    {
        // Orquesta's conductor test test_failed_item_task_active_with_concurrency: with concurrency 2, item 1 fails
        // while item 2 runs; the task stays running and item 3 is still handed out; the task fails once all are done.
        var workflow = Load("""
            version: 1.0
            tasks:
              each:
                with: {items: "<% [1, 2, 3, 4] %>", concurrency: 2}
                action: core.noop
            """);

        var run = Drive(workflow, [], a => a.ItemIndex == 1 ? (ExecutionStatus.Failed, null) : (ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
        Assert.Equal([0, 1, 2, 3], run.Actions.Select(a => a.ItemIndex ?? -1));
        Assert.Equal(2, run.MaxInFlight["each"]);
    }

    [Fact]
    public void WithItems_ACanceledItem_StopsNewItems_TheRunningOnesFinish()
    {
        // Orquesta: a canceled item puts its task in canceling (action_canceled_task_active_items_incomplete), and a
        // canceling workflow hands out no new items.
        var workflow = Load("""
            version: 1.0
            tasks:
              each:
                with: {items: "<% [1, 2, 3, 4, 5] %>", concurrency: 2}
                action: core.noop
            """);

        var run = Drive(workflow, [], a => a.ItemIndex == 0 ? (ExecutionStatus.Canceled, null) : (ExecutionStatus.Succeeded, null));

        Assert.Equal(ExecutionStatus.Canceled, run.Done.Status);
        Assert.Equal([0, 1], run.Actions.Select(a => a.ItemIndex ?? -1));
    }

    [Fact]
    public void WithItems_AConcurrencyBelowOne_RunsOneItemAtATime()
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              each:
                with: {items: "<% [1, 2, 3] %>", concurrency: 0}
                action: core.noop
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(1, run.MaxInFlight["each"]);
        Assert.Equal(3, run.Actions.Count);
    }

    [Fact]
    public void JoinCount_CountsInboundTasks_NotTransitions()
    {
        // Orquesta 1.1 ("count by task completion instead of task transition"): a task with two transitions into the
        // join that both hold counts once, so join: 2 still waits for a second task.
        var workflow = Load("""
            version: 1.0
            tasks:
              fan: {action: core.noop, next: [{do: [a, b]}]}
              a:
                action: core.noop
                next: [{when: <% succeeded() %>, do: both}, {when: <% completed() %>, publish: [{a_done: true}], do: both}]
              b:
                action: core.noop
                next: [{publish: [{b_done: true}], do: both}]
              both:
                join: 2
                action: core.echo
                input: {message: "<% ctx().get('b_done', false) %>"}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Single(run.Actions, a => a.Task == "both");
        Assert.True(run.Actions.Single(a => a.Task == "both").Input["message"]!.GetValue<bool>()); // it waited for b
    }

    [Fact]
    public void JoinCount_WithMoreBranchesThanTheCount_RunsAgainForABranchArrivingAfterItStarted_WithThatBranchsContextOnly()
    {
        // Orquesta's conductor: with join: 2 of three branches the join runs once two have arrived, and the workflow
        // stays running for the third (test_join_count_satisfied_with_branch_running). When the third arrives after the
        // join started, the conductor stages the join anew — satisfied already — and hands it out again, with only the
        // late branch's context (checked against orquesta's WorkflowConductor; its docs speak of one instance).
        var workflow = Load("""
            version: 1.0
            tasks:
              fan: {action: core.noop, next: [{do: [a, b, c]}]}
              a: {action: core.noop, next: [{publish: pa=1, do: first_two}]}
              b: {action: core.noop, next: [{publish: pb=2, do: first_two}]}
              c: {action: core.noop, next: [{do: slow}]}
              slow: {action: core.noop, next: [{publish: pc=3, do: first_two}]}
              first_two:
                join: 2
                action: core.echo
                input: {message: "<% [ctx().get('pa'), ctx().get('pb'), ctx().get('pc')] %>"}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(["fan", "a", "b", "c", "first_two", "slow", "first_two"], run.Actions.Select(a => a.Task));
        Assert.Equal("[1,2,null]", run.Actions[4].Input["message"]!.ToJsonString());
        Assert.Equal("[null,null,3]", run.Actions[6].Input["message"]!.ToJsonString());
        Assert.Equal(ExecutionStatus.Succeeded, run.Done.Status);
    }

    [Fact]
    public void AJoin_SatisfiedByATask_TakesAllThatTasksTransitionsIntoIt_BeforeItStarts()
    {
        // Orquesta stages the join while the completing task's transitions are taken and hands it out afterwards, so a
        // second transition of the same task into the join merges into it rather than running it again.
        var workflow = Load("""
            version: 1.0
            tasks:
              a:
                action: core.noop
                next: [{publish: x=1, do: j}, {when: <% succeeded() %>, publish: y=2, do: j}]
              j: {join: 1, action: core.echo, input: {message: "<% ctx(x) + ctx(y) %>"}}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(["a", "j"], run.Actions.Select(a => a.Task));
        Assert.Equal(3L, run.Actions[1].Input["message"]!.GetValue<long>());
    }

    [Fact]
    public void InputDefaults_AreExpressions_OverTheInputsBeforeThem()
    {
        // Orquesta's render_input: each default is evaluated against the inputs before it.
        var workflow = Load("""
            version: 1.0
            input: [{host: web1}, {url: "https://<% ctx(host) %>/health"}]
            tasks:
              t: {action: core.noop}
            output: [{url: <% ctx(url) %>}]
            """);

        var run = Drive(workflow, new JsonObject { ["host"] = "api" }, Echo);

        Assert.Equal("https://api/health", run.Done.Output!["url"]!.GetValue<string>());
    }

    [Fact]
    public void ATimedOutAction_LeavesItsTaskFailed_RetriedWithoutWhen_AndSeenByFailed()
    {
        // Orquesta's task state machine turns action_timeout into a failed task: retry without when retries it,
        // failed() holds and task_status() says 'failed'.
        var workflow = Load("""
            version: 1.0
            tasks:
              slow:
                action: core.local
                retry: {count: 1}
                next: [{when: <% failed() %>, publish: [{seen: <% task_status(slow) %>}], do: noop}]
            output: [{seen: <% ctx().get('seen') %>}]
            """);
        var tries = 0;

        var retried = Drive(workflow, [], _ => ++tries == 1 ? (ExecutionStatus.Timeout, null) : (ExecutionStatus.Succeeded, null));
        var timedOut = Drive(workflow, [], _ => (ExecutionStatus.Timeout, null));

        Assert.Equal(2, retried.Actions.Count);
        Assert.Equal(ExecutionStatus.Succeeded, retried.Done.Status);
        Assert.Equal(2, timedOut.Actions.Count);
        Assert.Equal("failed", timedOut.Done.Output!["seen"]!.GetValue<string>());
    }

    [Fact]
    public void AnInputThatDoesNotRender_FailsTheWorkflow_ItsFailureTransitionsDoNotRun()
    {
        var workflow = Load("""
            version: 1.0
            tasks:
              t:
                action: core.echo
                input: {message: <% ctx(nowhere) %>}
                next: [{when: <% failed() %>, do: cleanup}]
              cleanup: {action: core.noop}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Empty(run.Actions);
        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
        Assert.StartsWith("task t: its input could not be rendered", run.Done.Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public void RetryCommand_RunsTheTaskAgainWithNoDelay_WhateverItsRetryDelay()
    {
        // Orquesta's test_retry_command: the re-run from do: retry has delay 0.
        var workflow = Load("""
            version: 1.0
            tasks:
              step:
                action: core.local
                retry: {count: 0, delay: 9}
                next: [{when: <% failed() %>, do: retry}]
            """);
        var tries = 0;

        var run = Drive(workflow, [], _ => ++tries == 1 ? (ExecutionStatus.Failed, null) : (ExecutionStatus.Succeeded, null));

        Assert.Equal([0.0, 0.0], run.Actions.Select(a => a.Delay.TotalSeconds));
        Assert.Equal(ExecutionStatus.Succeeded, run.Done.Status);
    }

    [Fact]
    public void EngineCommandNames_AreReserved_NoTaskMayTakeOne()
    {
        var (_, problems) = WorkflowLoader.LoadText("version: 1.0\ntasks:\n  retry: {action: core.noop}\n", "reserved.yaml");

        Assert.Contains("tasks.retry: 'retry' is an engine command, reserved", Assert.Single(problems).ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("log, fail")]
    [InlineData("fail, log")]
    public void AFailCommand_StillRunsTheTasksItsTransitionNames_WhateverTheirOrder(string targets)
    {
        // Orquesta's error-log-fail-concurrent: "do: log, fail" runs log (flagged run_on_fail) and fails the workflow.
        var workflow = Load($$"""
            version: 1.0
            tasks:
              task1:
                action: core.noop
                next:
                  - when: <% failed() %>
                    publish: error=<% result() %>
                    do: {{targets}}
              log:
                action: core.echo message=<% ctx().error %>
            output: [{error: <% ctx(error) %>}]
            """);

        var run = Drive(workflow, [], a => a.Task == "task1" ? (ExecutionStatus.Failed, "All your base are belong to us!") : Echo(a));

        Assert.Equal(["task1", "log"], run.Actions.Select(a => a.Task));
        Assert.Equal("All your base are belong to us!", run.Actions[1].Input["message"]!.GetValue<string>());
        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
    }

    [Fact]
    public void ABranchThatPublishedNothing_DoesNotOverwriteWhatAnotherPublished_AtAJoinOrInTheOutput()
    {
        // Orquesta keeps the contexts as a list of what each transition published (the first being input and vars); a
        // join merges the first arrival's list and, from later ones, only what they added — so the late branch b,
        // which published nothing, leaves a's x = 1 in place ("Fix overwritten context variables on task join").
        var workflow = Load("""
            version: 1.0
            vars: [{x: 0}]
            tasks:
              fan: {action: core.noop, next: [{do: [a, b, c, d]}]}
              a: {action: core.noop, next: [{publish: x=1, do: joined}]}
              b: {action: core.noop, next: [{do: joined}]}
              joined: {join: all, action: core.echo message=<% ctx(x) %>}
              c: {action: core.noop, next: [{publish: y=2}]}
              d: {action: core.noop}
            output: [{x: <% ctx(x) %>}, {y: <% ctx(y) %>}]
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(["fan", "a", "b", "c", "d", "joined"], run.Actions.Select(a => a.Task));
        Assert.Equal(1L, run.Actions.Single(a => a.Task == "joined").Input["message"]!.GetValue<long>());
        Assert.Equal("""{"x":1,"y":2}""", run.Done.Output!.ToJsonString()); // d ended last, with its x = 0
    }

    [Fact]
    public void RetryCountAndDelay_AreEvaluatedOnceFromTheTasksContext_AndMustBeWholeNumbers()
    {
        // Orquesta's setup_retry_in_task_state: count and delay are evaluated once, when the task is set up, and a
        // value that is no integer is an error ("The retry count for task ... is not an integer").
        var workflow = Load("""
            version: 1.0
            input: [times, wait]
            tasks:
              flaky:
                action: core.local
                retry: {count: <% ctx(times) %>, delay: <% ctx(wait) %>}
            """);

        var retried = Drive(workflow, new JsonObject { ["times"] = 2, ["wait"] = 3 }, _ => (ExecutionStatus.Failed, null));
        var bad = Drive(workflow, new JsonObject { ["times"] = "twice", ["wait"] = 3 }, _ => (ExecutionStatus.Failed, null));

        Assert.Equal([0.0, 3.0, 3.0], retried.Actions.Select(a => a.Delay.TotalSeconds));
        Assert.Empty(bad.Actions);
        Assert.Equal(["task flaky: retry count must be a whole number, got \"twice\""], bad.Done.Errors);
    }

    [Fact]
    public void WithItems_AnItemWhoseInputDoesNotRender_FailsTheWorkflowBeforeAnyItemStarts()
    {
        // Orquesta renders every item's action spec when it gets the task (TaskSpec.render), so one bad item fails
        // the workflow with no item started.
        var workflow = Load("""
            version: 1.0
            tasks:
              each:
                with: {items: "<% [{'n' => 1}, {'n' => 2}, {}] %>", concurrency: 1}
                action: core.echo message=<% item().n %>
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Empty(run.Actions);
        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
        Assert.StartsWith("task each: its input could not be rendered for item 2:", Assert.Single(run.Done.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void AJoinAfterASplit_WaitsForTheBranchesOfItsOwnRoute_AndRunsOncePerRoute()
    {
        // Orquesta's routes (test_splits): `merge` has two inbound transitions and no join, so it runs once per arrival,
        // each run on a route of its own; the join after it waits for the branches of its own route, so it runs twice.
        // `report` is reached from the start and from each join: three runs.
        var workflow = Load("""
            version: 1.0
            tasks:
              start: {action: core.noop, next: [{do: [left, right, report]}]}
              left: {action: core.noop, next: [{do: merge}]}
              right: {action: core.noop, next: [{do: merge}]}
              merge: {action: core.noop, next: [{do: [x, y]}]}
              x: {action: core.noop, next: [{do: both}]}
              y: {action: core.noop, next: [{do: both}]}
              both: {join: all, action: core.noop, next: [{do: report}]}
              report: {action: core.noop}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(ExecutionStatus.Succeeded, run.Done.Status);
        Assert.Equal(new Dictionary<string, int> { ["start"] = 1, ["left"] = 1, ["right"] = 1, ["merge"] = 2, ["x"] = 2, ["y"] = 2, ["both"] = 2, ["report"] = 3 },
            run.Actions.GroupBy(a => a.Task).ToDictionary(g => g.Key, g => g.Count()));
    }

    [Fact]
    public void TaskStatus_LooksOnTheCurrentRouteThenTheRoutesItSplitFrom_AndIsTheTextNullForATaskThatNeverRan()
    {
        // Orquesta's task_status(): the status on the current route, else on an earlier route it split from, else
        // statuses.UNSET, which is the text "null". `after` runs on two routes of its own (a split); left ran before.
        var workflow = Load("""
            version: 1.0
            tasks:
              start: {action: core.noop, next: [{do: [left, right]}, {when: <% failed() %>, do: never}]}
              left: {action: core.noop, next: [{do: after}]}
              right: {action: core.noop, next: [{do: after}]}
              after: {action: core.echo, input: {message: "<% [task_status(left), task_status(never)] %>"}}
              never: {action: core.noop}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(["""["succeeded","null"]""", """["succeeded","null"]"""], run.Actions.Where(a => a.Task == "after").Select(a => a.Input["message"]!.ToJsonString()));
    }

    [Fact]
    public void Task_GivesAFinishedTasksResultAndStatus_TheCurrentOneWithoutAName_AndFailsForATaskNotFinished()
    {
        // StackStorm's task(name) (its orquesta runner's function): the task's last run on this route.
        var workflow = Load("""
            version: 1.0
            tasks:
              first:
                action: core.echo message="one"
                next: [{publish: [own: <% task().status %>], do: second}, {when: <% failed() %>, do: never}]
              second:
                action: core.echo
                input: {message: "<% [task(first).result.stdout, task(first).status, task(first).task_id, ctx(own)] %>"}
                next: [{do: third}]
              third: {action: core.echo, input: {message: "<% task(never).status %>"}}
              never: {action: core.noop}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal("""["one","succeeded","first","succeeded"]""", run.Actions.Single(a => a.Task == "second").Input["message"]!.ToJsonString());
        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
        Assert.Contains("Unable to find task execution for \"never\"", Assert.Single(run.Done.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void AJoinSatisfiedByATaskWhoseOtherTransitionFailsToEvaluate_DoesNotStart()
    {
        // Orquesta: a transition whose when fails to evaluate fails the workflow, and a failed workflow hands out no
        // staged task (only those a fail command flagged to run on fail).
        var workflow = Load("""
            version: 1.0
            tasks:
              a:
                action: core.noop
                next: [{do: j}, {when: <% ctx(nowhere) %>, do: j}]
              j: {join: 1, action: core.noop}
            """);

        var run = Drive(workflow, [], Echo);

        Assert.Equal(["a"], run.Actions.Select(a => a.Task));
        Assert.Equal(ExecutionStatus.Failed, run.Done.Status);
    }
}
