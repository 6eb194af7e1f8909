using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace ServerlessStorm.Engine.Tests;

/// <summary>The whole path — webhook, trigger instance, rule, execution, runner, audit — on the in-memory ports.</summary>
public sealed class PipelineTests : IAsyncLifetime
{
    private readonly InMemoryAuditStore _audit = new();
    private readonly InMemoryMessageBus _bus = new(new BusOptions { RetryDelay = TimeSpan.FromMilliseconds(50) });
    private StormTestHost _host = null!;

    public async Task InitializeAsync() => _host = await StormTestHost.StartAsync(_audit, _bus, configure: services =>
        services.Configure<ExecutorOptions>(o => o.CancelPollInterval = TimeSpan.FromMilliseconds(50)));

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private Task<Api.ApiResponse> PostAsync(string hook, string body, params (string, string)[] headers) =>
        _host.Api.PostWebhookAsync(hook, headers.Select(h => KeyValuePair.Create(h.Item1, h.Item2)), Encoding.UTF8.GetBytes(body), TestCallers.Admin, CancellationToken.None);

    [Fact]
    public async Task HelloWebhook_RunsTheShellAction_AndLinksEveryRecordByTrace()
    {
        var response = await PostAsync("hello", """{"name": "storm"}""");

        Assert.Equal(202, response.StatusCode);
        var traceTag = response.Body!["trace_tag"]!.GetValue<string>();
        var trace = await Eventually.ReturnsAsync(() => _audit.GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));
        var execution = trace.Executions[0];
        Assert.Equal(ExecutionStatus.Succeeded, execution.Status);
        Assert.Equal("Hello storm", execution.Result!["stdout"]!.GetValue<string>());
        Assert.Equal([ExecutionStatus.Requested, ExecutionStatus.Scheduled, ExecutionStatus.Running, ExecutionStatus.Succeeded], execution.History.Select(h => h.Status));
        Assert.Equal("examples.hello", Assert.Single(trace.RuleEnforcements).RuleRef);
        await Eventually.ReturnsAsync(() => _audit.GetTraceAsync(traceTag, CancellationToken.None), t => t.HasProcessedWebhook());
    }

    [Fact]
    public async Task SameDeliveryIdTwice_RunsTheActionOnce()
    {
        var first = await PostAsync("hello", """{"name": "once"}""", ("X-GitHub-Delivery", "delivery-42"));
        var second = await PostAsync("hello", """{"name": "once"}""", ("X-GitHub-Delivery", "delivery-42"));

        Assert.Equal("delivery-42", first.Body!["trigger_instance_id"]!.GetValue<string>());
        Assert.Equal("delivery-42", second.Body!["trigger_instance_id"]!.GetValue<string>());
        var trace = await Eventually.ReturnsAsync(() => _audit.GetTraceAsync("delivery-42", CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));
        await Eventually.ReturnsAsync(() => _audit.GetTraceAsync("delivery-42", CancellationToken.None), t => t.HasProcessedWebhook());
        Assert.Single(trace.Executions);
        Assert.Single(trace.Executions[0].History, h => h.Status == ExecutionStatus.Running);
    }

    [Fact]
    public async Task SameDeliveryIdAnHourLater_FindsTheFirstDeliverysExecution()
    {
        // A sender's redelivery (GitHub's "Redeliver") can come much later. Execution ids are derived from the trigger
        // instance's time, so the redelivery must keep the first acceptance's time to find the execution it caused.
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 24, 9, 0, 0, TimeSpan.Zero));
        var audit = new InMemoryAuditStore(clock);
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), configure: services => services.AddSingleton<TimeProvider>(clock));
        var body = Encoding.UTF8.GetBytes("""{"name": "later"}""");
        KeyValuePair<string, string>[] headers = [KeyValuePair.Create("X-GitHub-Delivery", "delivery-77")];

        Assert.Equal(202, (await host.Api.PostWebhookAsync("hello", headers, body, TestCallers.Admin, CancellationToken.None)).StatusCode);
        var first = await Eventually.ReturnsAsync(() => audit.GetTraceAsync("delivery-77", CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status) && t.HasProcessedWebhook());
        clock.Advance(TimeSpan.FromHours(1));
        Assert.Equal(202, (await host.Api.PostWebhookAsync("hello", headers, body, TestCallers.Admin, CancellationToken.None)).StatusCode);

        // The second delivery's rule enforcement replaces the first one's row once the rule has matched again.
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync("delivery-77", CancellationToken.None),
            t => t.RuleEnforcements.Count == 1 && t.RuleEnforcements[0].EnforcedAt > first.RuleEnforcements[0].EnforcedAt && t.HasProcessedWebhook());
        Assert.Equal(first.Webhook().OccurredAt, trace.Webhook().OccurredAt);
        var execution = Assert.Single(trace.Executions);
        Assert.Equal(first.Executions[0].Id, execution.Id);
        Assert.Single(execution.History, h => h.Status == ExecutionStatus.Running);
    }

    [Fact]
    public async Task MalformedJson_Is400WithTheReason_AndRecorded()
    {
        var response = await PostAsync("hello", """{"name": """);

        Assert.Equal(400, response.StatusCode);
        Assert.Contains("not valid JSON", response.Body!["faultstring"]!.GetValue<string>());
        var rejected = await _audit.QueryTriggerInstancesAsync(new AuditQuery(TriggerInstanceStatus.Rejected), CancellationToken.None);
        var record = Assert.Single(rejected);
        Assert.Equal(response.Body!["rejection_id"]!.GetValue<string>(), record.Id);
        Assert.Equal("""{"name": """, record.Payload!["body_text"]!.GetValue<string>());
    }

    [Fact]
    public async Task UnknownHook_Is404()
    {
        var response = await PostAsync("nobody-listens", "{}");

        Assert.Equal(404, response.StatusCode);
        Assert.Contains("nobody-listens", response.Body!["faultstring"]!.GetValue<string>());
    }

    [Fact]
    public async Task CriteriaNotMet_NoExecution_ButTheTriggerInstanceIsProcessed()
    {
        var response = await PostAsync("hello", """{"nickname": "x"}""");
        var id = response.Body!["trigger_instance_id"]!.GetValue<string>();

        var trace = await Eventually.ReturnsAsync(() => _audit.GetTraceAsync(id, CancellationToken.None), t => t.HasProcessedWebhook());

        Assert.Empty(trace.Executions);
        Assert.Empty(trace.RuleEnforcements);
    }

    [Fact]
    public async Task RunApi_ValidatesParametersBeforeAnythingRuns()
    {
        var response = await _host.Api.PostExecutionAsync(JsonNode.Parse("""{"action": "core.local", "parameters": {"timeout": "soon"}}"""), null, TestCallers.Admin, CancellationToken.None);

        Assert.Equal(400, response.StatusCode);
        Assert.Equal(2, response.Body!["problems"]!.AsArray().Count);
        Assert.Empty(await _audit.QueryExecutionsAsync(new AuditQuery(), CancellationToken.None));
    }

    [Fact]
    public async Task SecretParameter_IsMaskedInTheAuditAndInTheResult()
    {
        using var packs = new TempPacks().WithPack("s");
        packs.Write("s/actions/login.yaml", """
            name: login
            runner_type: local-shell-cmd
            parameters:
              cmd: {type: string, default: 'echo "token=$TOKEN"', immutable: true}
              env: {type: object}
              token: {type: string, secret: true, required: true}
            """);
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs.Root);
        var executor = host.Services.GetRequiredService<ExecutionService>();

        var requested = await executor.RunAsync("s.login", new JsonObject { ["token"] = "hunter2-canary", ["env"] = new JsonObject { ["TOKEN"] = "hunter2-canary" } }, null, TestCallers.Admin.User, CancellationToken.None);
        var finished = await host.WaitForExecutionAsync(requested.Id);

        Assert.Equal("********", finished.Parameters["token"]!.GetValue<string>());
        Assert.Equal("token=********", finished.Result!["stdout"]!.GetValue<string>());
        Assert.DoesNotContain("hunter2-canary", finished.Parameters.ToJsonString());
    }

    [Fact]
    public async Task BackstopRule_MatchesOnlyWhenNoStandardRuleDid()
    {
        using var packs = new TempPacks().WithPack("b");
        packs.Write("b/rules/standard.yaml", """
            name: standard
            trigger: {type: core.st2.webhook, parameters: {url: alerts}}
            criteria: {trigger.body.kind: {type: equals, pattern: known}}
            action: {ref: core.echo, parameters: {message: standard}}
            """);
        packs.Write("b/rules/fallback.yaml", """
            name: fallback
            type: {ref: backstop}
            trigger: {type: core.st2.webhook, parameters: {url: alerts}}
            action: {ref: core.echo, parameters: {message: backstop}}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        async Task<string> RuleFor(string kind)
        {
            var response = await host.Api.PostWebhookAsync("alerts", [], Encoding.UTF8.GetBytes($$"""{"kind": "{{kind}}"}"""), TestCallers.Admin, CancellationToken.None);
            var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(response.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None), t => t.RuleEnforcements.Count > 0);
            return Assert.Single(trace.RuleEnforcements).RuleRef;
        }

        Assert.Equal("b.standard", await RuleFor("known"));
        Assert.Equal("b.fallback", await RuleFor("other"));
    }

    public static TheoryData<string> InjectionCorpus() =>
    [
        "{{ 7*7 }}", "{% for i in range(9) %}x{% endfor %}", "{# #}", "<% ctx().password %>", "{{ st2kv.system.secret }}",
        "{{ trigger.__class__ }}", "{{ ''.GetType().Assembly.Location }}", "System.Environment.Exit(1)", "$(id)", "`id`",
        "{{ trigger.body.name }}", "}}{{", "{%- raw -%}", "\u007b\u007b 1 \u007d\u007d",
    ];

    [Theory]
    [MemberData(nameof(InjectionCorpus))]
    public async Task PayloadStrings_ThatLookLikeCode_ReachTheActionAsTheSameText(string hostile)
    {
        using var packs = new TempPacks().WithPack("inj");
        packs.Write("inj/rules/echo.yaml", """
            name: echo
            trigger: {type: core.st2.webhook, parameters: {url: inj}}
            criteria: {trigger.body.name: {type: exists}}
            action: {ref: core.echo, parameters: {message: "[{{ trigger.body.name }}]"}}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var response = await host.Api.PostWebhookAsync("inj", [], Encoding.UTF8.GetBytes(new JsonObject { ["name"] = hostile }.ToJsonString()), TestCallers.Admin, CancellationToken.None);
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(response.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));

        Assert.Equal($"[{hostile}]", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task ActionTrigger_ChainsARuleOnAnotherActionsSuccess_AndNotifyAnnouncesIt()
    {
        using var packs = new TempPacks().WithPack("chain");
        packs.Write("chain/actions/first.yaml", """
            name: first
            runner_type: echo
            notify:
              on-success:
                message: "first said {{ action_results.stdout }}"
                routes: [chat]
              on-failure:
                message: never
            """);
        packs.Write("chain/rules/start.yaml", """
            name: start
            trigger: {type: core.st2.webhook, parameters: {url: chain}}
            action: {ref: chain.first, parameters: {message: "{{ trigger.body.word }}"}}
            """);
        packs.Write("chain/rules/then.yaml", """
            name: then
            trigger: {type: core.st2.generic.actiontrigger}
            criteria:
              trigger.action_ref: {type: equals, pattern: chain.first}
              trigger.status: {type: equals, pattern: succeeded}
            action: {ref: core.echo, parameters: {message: "after {{ trigger.result.stdout }} ({{ trigger.execution_id }})"}}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var response = await host.Api.PostWebhookAsync("chain", [], Encoding.UTF8.GetBytes("""{"word": "ping"}"""), TestCallers.Admin, CancellationToken.None);
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(response.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
            t => t.Executions.Count == 2 && t.Executions.All(e => ExecutionStatus.IsTerminal(e.Status)) && t.TriggerInstances.Any(ti => ti.TriggerType == CoreTriggers.NotifyTrigger));

        var first = Assert.Single(trace.Executions, e => e.ActionRef == "chain.first");
        var second = Assert.Single(trace.Executions, e => e.ActionRef == "core.echo");
        Assert.Equal("chain.then", second.RuleRef);
        Assert.Equal($"after ping ({first.Id})", second.Result!["stdout"]!.GetValue<string>());
        var notification = Assert.Single(trace.TriggerInstances, t => t.TriggerType == CoreTriggers.NotifyTrigger);
        Assert.Equal("first said ping", notification.Payload!["message"]!.GetValue<string>());
        Assert.Equal("chat", notification.Payload["route"]!.GetValue<string>());
        Assert.Equal("chat", notification.Payload["channel"]!.GetValue<string>());
        Assert.Equal("ping", JsonNode.Parse(notification.Payload["data"]!["result"]!.GetValue<string>())!["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task Notify_OnFailureMeansFailedOrTimedOut_AsInStackStorm_AndOnCompleteMeansAnyEnd()
    {
        using var packs = new TempPacks().WithPack("n");
        packs.Write("n/actions/run.yaml", """
            name: run
            runner_type: local-shell-cmd
            notify:
              on-success: {routes: [chat]}
              on-failure: {message: "failure {{ execution.status }}"}
              on-complete: {message: "complete {{ execution.status }}"}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);
        var executions = host.Services.GetRequiredService<ExecutionService>();

        async Task<string[]> NotifiedAsync(string executionId, int count)
        {
            var execution = await host.WaitForExecutionAsync(executionId);
            var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(execution.TraceTag, CancellationToken.None),
                t => t.TriggerInstances.Count(ti => ti.TriggerType == CoreTriggers.NotifyTrigger) >= count);
            return [.. trace.TriggerInstances.Where(ti => ti.TriggerType == CoreTriggers.NotifyTrigger).Select(ti => ti.Payload!["message"]!.GetValue<string>()).Order()];
        }

        var succeeded = await executions.RunAsync("n.run", new JsonObject { ["cmd"] = "true" }, null, TestCallers.Admin.User, CancellationToken.None);
        var failed = await executions.RunAsync("n.run", new JsonObject { ["cmd"] = "exit 1" }, null, TestCallers.Admin.User, CancellationToken.None);
        var timedOut = await executions.RunAsync("n.run", new JsonObject { ["cmd"] = "sleep 30", ["timeout"] = 1 }, null, TestCallers.Admin.User, CancellationToken.None);
        var canceled = await executions.RunAsync("n.run", new JsonObject { ["cmd"] = "sleep 30" }, null, TestCallers.Admin.User, CancellationToken.None);
        await Eventually.ReturnsAsync(() => audit.GetExecutionAsync(canceled.Id, CancellationToken.None), e => e!.Status == ExecutionStatus.Running);
        await executions.CancelAsync(canceled.Id, CancellationToken.None);

        Assert.Equal(["Action n.run succeeded.", "complete succeeded"], await NotifiedAsync(succeeded.Id, 2));
        Assert.Equal(["complete failed", "failure failed"], await NotifiedAsync(failed.Id, 2));
        Assert.Equal(["complete timeout", "failure timeout"], await NotifiedAsync(timedOut.Id, 2));
        Assert.Equal(["complete canceled"], await NotifiedAsync(canceled.Id, 1));
    }

    [Fact]
    public async Task ARequestForAnExecutionStillRunning_ComesBackWhenItsWorkerWouldHaveGivenUp()
    {
        // Its worker may have died: acknowledging the request and forgetting it would leave it running forever.
        var audit = new InMemoryAuditStore();
        var bus = new DelayRecordingBus(new InMemoryMessageBus());
        await using var host = await StormTestHost.StartAsync(audit, bus);
        var started = DateTimeOffset.UtcNow - TimeSpan.FromSeconds(10);
        var record = new ExecutionRecord
        {
            Id = StormIds.New(started), ActionRef = "core.local", RunnerType = "local-shell-cmd", TraceTag = "t-running",
            Parameters = new JsonObject { ["cmd"] = "sleep 1", ["timeout"] = 600 }, Status = ExecutionStatus.Running, StartTimestamp = started,
        };
        record.History.Add(new StatusChange(ExecutionStatus.Requested, started));
        record.History.Add(new StatusChange(ExecutionStatus.Running, started));
        Assert.True(await audit.TryCreateExecutionAsync(record, CancellationToken.None));

        await host.Services.GetRequiredService<ActionExecutor>().HandleAsync(ExecutionService.RequestFor(record), CancellationToken.None);

        var (queue, delay) = Assert.Single(bus.Delayed);
        Assert.Equal(StormQueues.Executions, queue);
        // 600 s timeout + 30 s grace, less the 10 s it has run (and a second's margin).
        Assert.InRange(delay.TotalSeconds, 615, 625);
        Assert.Equal(ExecutionStatus.Running, (await audit.GetExecutionAsync(record.Id, CancellationToken.None))!.Status);

        // A month-long timeout comes back after a day at most (queues hold a message back for 7 days at most).
        var longRun = new ExecutionRecord
        {
            Id = StormIds.New(started) + "l", ActionRef = "core.local", RunnerType = "local-shell-cmd", TraceTag = "t-long",
            Parameters = new JsonObject { ["cmd"] = "sleep 1", ["timeout"] = 30 * 24 * 3600 }, Status = ExecutionStatus.Running, StartTimestamp = started,
            History = [new StatusChange(ExecutionStatus.Running, started)],
        };
        Assert.True(await audit.TryCreateExecutionAsync(longRun, CancellationToken.None));
        await host.Services.GetRequiredService<ActionExecutor>().HandleAsync(ExecutionService.RequestFor(longRun), CancellationToken.None);
        Assert.Contains((StormQueues.Executions, TimeSpan.FromDays(1)), bus.Delayed);
    }

    private sealed class DelayRecordingBus(IMessageBus inner) : ServerlessStorm.Testing.DelegatingMessageBus(inner)
    {
        public System.Collections.Concurrent.ConcurrentBag<(string Queue, TimeSpan Delay)> Delayed { get; } = [];

        public override Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
        {
            if (message.Delay > TimeSpan.Zero)
            {
                Delayed.Add((queue, message.Delay));
                return Task.CompletedTask; // not delivered: this test only looks at when it would come back
            }

            return Inner.PublishAsync(queue, message, cancellationToken);
        }

    }

    [Fact]
    public async Task ReRun_KeepsTheParametersAndSecrets_AppliesOverrides_AndLinksToTheOriginal()
    {
        using var packs = new TempPacks().WithPack("r");
        packs.Write("r/actions/say.yaml", """
            name: say
            runner_type: local-shell-cmd
            parameters:
              token: {type: string, secret: true, required: true}
              message: {type: string, default: first}
              cmd: {default: 'echo "{{ token }}:{{ message }}:$STORM_ARG_1"', immutable: true}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);
        var service = host.Services.GetRequiredService<ExecutionService>();

        var original = await host.WaitForExecutionAsync((await service.RunAsync("r.say", new JsonObject { ["token"] = "t0k3n" }, null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var again = await host.WaitForExecutionAsync((await service.ReRunAsync(original.Id, new JsonObject { ["message"] = "second" }, TestCallers.Admin.User, CancellationToken.None)).Id);

        Assert.Equal("********:first:********", original.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("********:second:********", again.Result!["stdout"]!.GetValue<string>());
        Assert.Equal(original.Id, again.ReRunOf);
        Assert.Equal(original.TraceTag, again.TraceTag);
        Assert.NotEqual(original.Id, again.Id);
        Assert.Equal("********", again.Parameters["token"]!.GetValue<string>());
        Assert.DoesNotContain("t0k3n", again.SealedParameters!.ToJsonString());
        await Assert.ThrowsAsync<ExecutionNotFoundException>(() => service.ReRunAsync("nope", [], TestCallers.Admin.User, CancellationToken.None));
    }

    [Fact]
    public async Task Cancel_BeforeItRuns_CancelsAtOnce_AndTheRunnerNeverStarts()
    {
        var audit = new InMemoryAuditStore();
        var held = new HoldingBus(new InMemoryMessageBus());
        await using var host = await StormTestHost.StartAsync(audit, held);
        var service = host.Services.GetRequiredService<ExecutionService>();

        var requested = await service.RunAsync("core.local", new JsonObject { ["cmd"] = "echo ran" }, null, TestCallers.Admin.User, CancellationToken.None);
        var canceled = await service.CancelAsync(requested.Id, CancellationToken.None);
        await held.ReleaseAsync();
        await Eventually.TrueAsync(() => host.Logs.Any(l => l.Contains($"Execution {requested.Id} is already canceled", StringComparison.Ordinal)), what: "the executor to skip the canceled execution");

        Assert.Equal(ExecutionStatus.Canceled, canceled.Status);
        var final = await audit.GetExecutionAsync(requested.Id, CancellationToken.None);
        Assert.Equal(ExecutionStatus.Canceled, final!.Status);
        Assert.DoesNotContain(final.History, h => h.Status == ExecutionStatus.Running);
    }

    [Fact]
    public async Task Cancel_WhileRunning_StopsItsProcesses()
    {
        var pidFile = Path.Combine(Path.GetTempPath(), $"storm-cancel-{Guid.NewGuid():N}.pid");
        var service = _host.Services.GetRequiredService<ExecutionService>();

        var requested = await service.RunAsync("core.local", new JsonObject { ["cmd"] = $"sleep 30 & echo $! > {pidFile}; wait" }, null, TestCallers.Admin.User, CancellationToken.None);
        await Eventually.ReturnsAsync(() => _audit.GetExecutionAsync(requested.Id, CancellationToken.None), e => e?.Status == ExecutionStatus.Running && File.Exists(pidFile));
        await service.CancelAsync(requested.Id, CancellationToken.None);
        var final = await _host.WaitForExecutionAsync(requested.Id);

        Assert.Equal(ExecutionStatus.Canceled, final.Status);
        Assert.Equal([ExecutionStatus.Requested, ExecutionStatus.Scheduled, ExecutionStatus.Running, ExecutionStatus.Canceling, ExecutionStatus.Canceled], final.History.Select(h => h.Status));
        var child = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await Eventually.TrueAsync(() => !Directory.Exists($"/proc/{child}") || File.ReadAllText($"/proc/{child}/stat").Contains(") Z ", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "the sleep to be killed");
        File.Delete(pidFile);
    }

    [Fact]
    public async Task RetryPolicy_RunsAFailingActionAgain_UntilItSucceedsOrAttemptsRunOut()
    {
        var counter = Path.Combine(Path.GetTempPath(), $"storm-retry-{Guid.NewGuid():N}");
        using var packs = new TempPacks().WithPack("flaky");
        packs.Write("flaky/actions/third_time.yaml", $$"""
            name: third_time
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'n=$(cat {{counter}} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {{counter}}; echo "attempt $n"; [ $n -ge 3 ]', immutable: true}
            """);
        packs.Write("flaky/actions/never.yaml", "name: never\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: 'exit 1', immutable: true}\n");
        packs.Write("flaky/policies/retry_third.yaml", """
            name: retry_third
            resource_ref: flaky.third_time
            policy_type: action.retry
            parameters: {retry_on: failure, max_retry_count: 5, delay: 0.1}
            """);
        packs.Write("flaky/policies/retry_never.yaml", """
            name: retry_never
            resource_ref: flaky.never
            policy_type: action.retry
            parameters: {retry_on: failure, max_retry_count: 2, delay: 0}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);
        var service = host.Services.GetRequiredService<ExecutionService>();

        var flaky = await service.RunAsync("flaky.third_time", [], null, TestCallers.Admin.User, CancellationToken.None);
        var never = await service.RunAsync("flaky.never", [], null, TestCallers.Admin.User, CancellationToken.None);
        var flakyTrace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(flaky.TraceTag, CancellationToken.None),
            t => t.Executions.Any(e => e.Status == ExecutionStatus.Succeeded));
        var neverTrace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(never.TraceTag, CancellationToken.None),
            t => t.Executions.Count == 3 && t.Executions.All(e => ExecutionStatus.IsTerminal(e.Status)));

        Assert.Equal([0, 1, 2], flakyTrace.Executions.OrderBy(e => e.RetryCount).Select(e => e.RetryCount));
        Assert.Equal([ExecutionStatus.Failed, ExecutionStatus.Failed, ExecutionStatus.Succeeded], flakyTrace.Executions.OrderBy(e => e.RetryCount).Select(e => e.Status));
        Assert.Equal("attempt 3", flakyTrace.Executions.Single(e => e.RetryCount == 2).Result!["stdout"]!.GetValue<string>());
        Assert.All(neverTrace.Executions, e => Assert.Equal(ExecutionStatus.Failed, e.Status));
        Assert.Equal(2, neverTrace.Executions.Max(e => e.RetryCount));
        File.Delete(counter);
    }

    /// <summary>Holds execution requests back (a queue backlog) until released.</summary>
    private sealed class HoldingBus(IMessageBus inner) : ServerlessStorm.Testing.DelegatingMessageBus(inner)
    {
        private readonly List<(string Queue, BusMessage Message)> _held = [];

        public override Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
        {
            if (queue == StormQueues.Executions)
            {
                lock (_held)
                {
                    _held.Add((queue, message));
                }

                return Task.CompletedTask;
            }

            return Inner.PublishAsync(queue, message, cancellationToken);
        }


        public async Task ReleaseAsync()
        {
            foreach (var (queue, message) in _held)
            {
                await Inner.PublishAsync(queue, message, CancellationToken.None);
            }
        }
    }

    [Fact]
    public async Task IntervalTimerRule_FiresThroughTheWorker()
    {
        using var packs = new TempPacks().WithPack("timers");
        packs.Write("timers/rules/every_second.yaml", """
            name: every_second
            trigger: {type: core.st2.IntervalTimer, parameters: {unit: seconds, delta: 1}}
            action: {ref: core.noop}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var executions = await Eventually.ReturnsAsync(() => audit.QueryExecutionsAsync(new AuditQuery(ExecutionStatus.Succeeded), CancellationToken.None), e => e.Count >= 2);

        Assert.All(executions, e => Assert.Equal("timers.every_second", e.RuleRef));
        Assert.All(executions, e => Assert.StartsWith("timer-", e.TraceTag, StringComparison.Ordinal));
    }

    [Fact]
    public void StormEvents_CarryTriggerInstancesAsCloudEvents()
    {
        var instance = new TriggerInstance("ti-1", CoreTriggers.Webhook, new JsonObject { ["url"] = "hello" }, JsonNode.Parse("""{"body": {"a": 1}}"""), new DateTimeOffset(2026, 11, 24, 0, 0, 0, TimeSpan.Zero), "trace-1");

        var message = StormEvents.Encode(instance);
        var json = JsonNode.Parse(message.Body.Span)!;
        var decoded = StormEvents.DecodeTriggerInstance(message);

        Assert.Equal("1.0", json["specversion"]!.GetValue<string>());
        Assert.Equal("core.st2.webhook", json["type"]!.GetValue<string>());
        Assert.Equal("ti-1", json["id"]!.GetValue<string>());
        Assert.Equal(instance.TraceTag, decoded.TraceTag);
        Assert.True(JsonNode.DeepEquals(instance.Payload, decoded.Payload));
        Assert.Equal(instance.OccurredAt, decoded.OccurredAt);
        Assert.Throws<MalformedMessageException>(() => StormEvents.DecodeTriggerInstance(new BusMessage("x", Encoding.UTF8.GetBytes("{\"not\":\"an event\"}"))));
    }
}

public sealed class InMemoryBusContractTests : BusContractTests
{
    protected override Task<IMessageBus> CreateBusAsync() => Task.FromResult<IMessageBus>(new InMemoryMessageBus(FastRetries));

}

public sealed class SqliteBusContractTests : BusContractTests, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("storm-bus-").FullName;
    private readonly List<SqliteMessageBus> _buses = [];

    protected override async Task<IMessageBus> CreateBusAsync()
    {
        var bus = SqliteMessageBus.Open(Path.Combine(_directory, Guid.NewGuid().ToString("N")), FastRetries);
        _buses.Add(bus);
        return bus;
    }

    [Fact]
    public async Task Reopened_DeliversWhatWasNotAcknowledged_BeforeAnythingNew_AndKeepsDeadLetters()
    {
        var folder = Path.Combine(_directory, "reopen");
        var handled = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var first = SqliteMessageBus.Open(folder, FastRetries);
        for (var i = 0; i < 20; i++)
        {
            await first.PublishAsync("work", Message($"m{i}"), CancellationToken.None);
        }

        await first.PublishAsync("work", Message("later") with { Delay = TimeSpan.FromHours(1) }, CancellationToken.None);
        await using (await first.SubscribeAsync("poison", (_, _) => throw new MalformedMessageException("cannot read it"), CancellationToken.None))
        {
            await first.PublishAsync("poison", Message("bad"), CancellationToken.None);
            await Eventually.ReturnsAsync(() => DeadLetterCountAsync(first, "poison"), c => c == 1, what: "the bad message dead-lettered");
        }

        var gate = new TaskCompletionSource();
        var subscription = await first.SubscribeAsync("work", async (m, ct) =>
        {
            if (handled.Count >= 5)
            {
                await gate.Task.WaitAsync(ct); // stuck when the process goes away
            }

            handled.AddOrUpdate(m.Id, 1, (_, n) => n + 1);
        }, CancellationToken.None);
        await Eventually.TrueAsync(() => handled.Count >= 5, what: "five messages handled");
        await subscription.DisposeAsync();
        await first.DisposeAsync();

        var second = SqliteMessageBus.Open(folder, FastRetries);
        _buses.Add(second);
        Assert.Equal(20 - handled.Count + 1, second.Recovered); // and the delayed one, still waiting for its hour
        await second.PublishAsync("work", Message("new"), CancellationToken.None);
        var order = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using (await second.SubscribeAsync("work", (m, _) =>
        {
            order.Enqueue(m.Id);
            handled.AddOrUpdate(m.Id, 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }, CancellationToken.None))
        {
            await Eventually.TrueAsync(() => handled.Count == 21, what: "every message handled once across the restart");
        }

        Assert.All(handled, h => Assert.Equal(1, h.Value));
        Assert.False(handled.ContainsKey("later"));
        Assert.Contains("new", order.TakeLast(4)); // after the recovered ones (handled in parallel, so near the end)
        var letter = Assert.Single(await second.ListDeadLettersAsync("poison", 10, CancellationToken.None));
        Assert.Contains("cannot read it", letter.Reason, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        foreach (var bus in _buses)
        {
            bus.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        Directory.Delete(_directory, recursive: true);
    }
}
