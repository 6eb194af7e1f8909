using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Durable.Tests;

/// <summary>Workflows as actions, run by the orchestrator on DurableTask.Core's Azure Storage backend over Azurite.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class WorkflowRunTests(AzuriteFixture azurite)
{
    /// <summary>Writes workflow action wf.NAME (its parameters as YAML lines, if any) and its workflow file.</summary>
    private static void WriteWorkflow(TempPacks packs, string name, string workflow, string parameters = "")
    {
        packs.Write($"wf/actions/{name}.yaml", $"name: {name}\nrunner_type: orquesta\nentry_point: workflows/{name}.yaml\n{(parameters.Length > 0 ? "parameters:\n" + parameters : "")}");
        packs.Write($"wf/actions/workflows/{name}.yaml", workflow);
    }

    private Task<(StormTestHost Host, WorkflowTaskHub Hub)> StartAsync(TempPacks packs, TimeProvider? clock = null) => StartAsync(packs.Root, clock);

    private Task<(StormTestHost Host, WorkflowTaskHub Hub)> StartAsync(string packsRoot, TimeProvider? clock = null, Action<IServiceCollection>? configure = null) =>
        WorkflowHosts.StartAsync(azurite, packsRoot, clock, configure);

    [Fact]
    public async Task Workflow_RunsEachTaskAsAChildExecution_AndEndsWithItsOutput()
    {
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "greet_all", """
            version: 1.0
            input: [names]
            tasks:
              greet:
                with: {items: "name in <% ctx(names) %>", concurrency: 2}
                action: core.echo
                input: {message: "Hello <% item(name) %>"}
                next:
                  - when: <% succeeded() %>
                    publish: [{greetings: "<% result() %>"}]
                    do: count
              count:
                action: core.local
                input: {cmd: "echo <% len(ctx(greetings)) %> greeted"}
                next: [{publish: [{summary: "<% result().stdout %>"}]}]
            output: [{summary: "<% ctx(summary) %>"}, {first: "<% ctx(greetings)[0].stdout %>"}]
            """, "  names: {type: array, required: true}\n");
        using var spans = new SpanRecorder();
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.greet_all",
            new JsonObject { ["names"] = new JsonArray("ann", "bob", "cy") }, null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        var trace = await host.Audit.GetTraceAsync(workflow.TraceTag, CancellationToken.None);

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        Assert.Equal("3 greeted", workflow.Result!["output"]!["summary"]!.GetValue<string>());
        Assert.Equal("Hello ann", workflow.Result["output"]!["first"]!.GetValue<string>());
        var children = trace.Executions.Where(e => e.ParentId == workflow.Id).ToList();
        Assert.Equal(4, children.Count);
        Assert.Equal(["count", "greet", "greet", "greet"], children.Select(c => c.WorkflowTask).Order());
        Assert.All(children, c => Assert.Equal(ExecutionStatus.Succeeded, c.Status));

        // Each task is a span of the workflow's trace, under the span that ran the workflow, across the task hub.
        var run = spans.All.Single(s => s.OperationName == StormTracing.ExecutionRun && (string?)s.GetTagItem(StormTracing.ExecutionId) == workflow.Id);
        var tasks = spans.All.Where(s => s.OperationName == StormTracing.WorkflowTask && (string?)s.GetTagItem(StormTracing.ExecutionId) == workflow.Id).ToList();
        Assert.Equal(["count", "greet", "greet", "greet"], tasks.Select(t => (string)t.GetTagItem(StormTracing.WorkflowTaskName)!).Order());
        Assert.All(tasks, t => Assert.Equal((run.TraceId, run.SpanId), (t.TraceId, t.ParentSpanId)));
    }

    [Fact]
    public async Task Workflow_WhoseTaskFailsUnhandled_FailsNamingTheTask()
    {
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "breaks", """
            version: 1.0
            tasks:
              boom:
                action: core.local
                input: {cmd: "echo failing; exit 3"}
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.breaks", [], null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.Equal(ExecutionStatus.Failed, workflow.Status);
        Assert.StartsWith("task boom failed", workflow.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFailedWorkflow_KeepsTheOutputItsFailurePublished_InItsResult()
    {
        // Orquesta renders the output for a failed workflow too (StackStorm shows it beside the errors).
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "diagnosed", """
            version: 1.0
            tasks:
              boom:
                action: core.local cmd="echo disk full >&2; exit 3"
                next:
                  - when: <% failed() %>
                    publish: why=<% result().stderr %>
                    do: fail
            output: [{why: <% ctx(why) %>}]
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.diagnosed", [], null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.Equal(ExecutionStatus.Failed, workflow.Status);
        Assert.Equal("disk full", workflow.Result!["output"]!["why"]!.GetValue<string>().Trim());
        Assert.NotEmpty(workflow.Result["errors"]!.AsArray());
    }

    [Fact]
    public async Task DeployExample_DeploysAHealthyVersion_AndRollsBackAnUnhealthyOneAfterItsRetries()
    {
        var appDir = Directory.CreateTempSubdirectory("storm-deploy-").FullName;
        var (host, hub) = await StartAsync(RepositoryPaths.Packs);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();

        var good = await host.WaitForExecutionAsync((await service.RunAsync("examples.deploy",
            new JsonObject { ["version"] = "2.0", ["app_dir"] = appDir }, null, TestCallers.Admin.User, CancellationToken.None)).Id, TimeSpan.FromSeconds(90));
        var bad = await host.WaitForExecutionAsync((await service.RunAsync("examples.deploy",
            new JsonObject { ["version"] = "2.1-bad", ["app_dir"] = appDir, ["retries"] = 1 }, null, "alice", CancellationToken.None)).Id, TimeSpan.FromSeconds(90));
        var badTasks = (await host.Audit.GetTraceAsync(bad.TraceTag, CancellationToken.None)).Executions.Where(e => e.ParentId == bad.Id).ToList();

        Assert.True(good.Status == ExecutionStatus.Succeeded, good.Error);
        Assert.Equal("""{"status":"deployed","version":"2.0","previous":"none"}""", good.Result!["output"]!.ToJsonString());
        Assert.Equal(ExecutionStatus.Failed, bad.Status);
        Assert.Equal(2, badTasks.Count(t => t.WorkflowTask == "health_check")); // the first check and one retry
        Assert.Equal("rolled back to 2.0", badTasks.Single(t => t.WorkflowTask == "rollback").Result!["stdout"]!.GetValue<string>());
        Assert.Equal("alice", bad.User); // every task runs for its workflow's user (context.user)
        Assert.All(badTasks, t => Assert.Equal("alice", t.User));
        Assert.Equal("2.0", (await File.ReadAllTextAsync(Path.Combine(appDir, "VERSION"))).Trim());
        Directory.Delete(appDir, recursive: true);
    }

    [Fact]
    public async Task DiagnoseExample_ChecksEveryUrlAndTheDisk_AndPostsOneSummary()
    {
        // Stand-ins for the services checked and for the report's receiver, on loopback (allowed for this test only).
        using var server = new LoopbackHttpServer();
        var (host, hub) = await StartAsync(RepositoryPaths.Packs, configure: s => s.Configure<ServerlessStorm.Engine.Hosting.StormOptions>(o => o.AllowedNetworks.Add("127.0.0.0/8")));
        await using var _ = host;
        await using var __ = hub;
        string[] urls = [server.Url("up/1"), server.Url("up/2"), server.Url("down")];

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("examples.diagnose",
            new JsonObject { ["urls"] = new JsonArray([.. urls.Select(u => (JsonNode)u)]), ["report_url"] = server.Url("report") }, null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        var tasks = (await host.Audit.GetTraceAsync(workflow.TraceTag, CancellationToken.None)).Executions.Where(e => e.ParentId == workflow.Id).ToList();

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        Assert.Equal(3, tasks.Count(t => t.WorkflowTask == "check_urls")); // one execution per URL
        Assert.Equal(1, tasks.Count(t => t.WorkflowTask == "summarize"));  // the join ran once, after both branches
        var report = Assert.Single(server.Received, r => r.Path == "/report");
        var summary = JsonNode.Parse(report.Body)!;
        Assert.Equal(3, summary["checked"]!.GetValue<int>());
        Assert.False(summary["all_answered"]!.GetValue<bool>());
        Assert.Equal([200, 200, 503], summary["responses"]!.AsArray().Select(r => r!["status_code"]!.GetValue<int>()));
        Assert.Contains("%", summary["disk"]!.GetValue<string>());
        Assert.Equal(200, workflow.Result!["output"]!["report_status"]!.GetValue<int>());
    }

    [Fact]
    public async Task RemediateExample_CleansOnlyAfterApproval()
    {
        var cache = Directory.CreateTempSubdirectory("storm-cache-").FullName;
        await File.WriteAllBytesAsync(Path.Combine(cache, "big.bin"), new byte[64 * 1024]);
        var (host, hub) = await StartAsync(RepositoryPaths.Packs);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();
        var inquiries = host.Services.GetRequiredService<InquiryService>();
        async Task<ExecutionRecord> RunAnswering(bool answer)
        {
            var workflow = await service.RunAsync("examples.remediate", new JsonObject { ["cache_dir"] = cache, ["limit_kb"] = 16 }, null, TestCallers.Admin.User, CancellationToken.None);
            var question = await PendingApprovalAsync(host, workflow);
            Assert.True(File.Exists(Path.Combine(cache, "big.bin"))); // nothing risky happens before the answer
            await inquiries.RespondAsync(question.Id, new JsonObject { ["continue"] = answer }, "oncall", CancellationToken.None);
            return await host.WaitForExecutionAsync(workflow.Id, TimeSpan.FromSeconds(60));
        }

        var declined = await RunAnswering(false);
        var keptAfterDecline = File.Exists(Path.Combine(cache, "big.bin"));
        var approved = await RunAnswering(true);

        Assert.True(declined.Status == ExecutionStatus.Succeeded, declined.Error);
        Assert.Equal("declined", declined.Result!["output"]!["outcome"]!.GetValue<string>());
        Assert.True(keptAfterDecline);
        Assert.True(approved.Status == ExecutionStatus.Succeeded, approved.Error);
        Assert.Equal("cleaned", approved.Result!["output"]!["outcome"]!.GetValue<string>());
        Assert.Empty(Directory.EnumerateFileSystemEntries(cache));
        Directory.Delete(cache);
    }

    [Fact]
    public async Task PauseHoldsTheNextTask_ResumeGoesOn_AndCancelStopsTheWorkflowAndItsRunningTask()
    {
        var marks = Path.Combine(Path.GetTempPath(), $"storm-pause-{Guid.NewGuid():N}.log");
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "slow", """
            version: 1.0
            input: [marks]
            tasks:
              first:
                action: core.local
                input: {cmd: 'sleep 1; echo first >> "$MARKS"', env: {MARKS: "<% ctx(marks) %>"}}
                next: [{do: second}]
              second:
                action: core.local
                input: {cmd: 'echo second >> "$MARKS"; sleep 30; echo late >> "$MARKS"', env: {MARKS: "<% ctx(marks) %>"}}
            """, "  marks: {type: string, required: true}\n");
        packs.Write("wf/rules/ended.yaml", """
            name: ended
            trigger: {type: core.st2.generic.actiontrigger}
            criteria: {trigger.action_ref: {type: equals, pattern: wf.slow}}
            action: {ref: core.noop}
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();
        string Marks() => File.Exists(marks) ? File.ReadAllText(marks) : "";

        var started = await service.RunAsync("wf.slow", new JsonObject { ["marks"] = marks }, null, TestCallers.Admin.User, CancellationToken.None);
        await Eventually.ReturnsAsync(() => host.Audit.GetTraceAsync(started.TraceTag, CancellationToken.None),
            t => t.Executions.Any(e => e.WorkflowTask == "first" && e.Status == ExecutionStatus.Running), TimeSpan.FromSeconds(30));
        var paused = await service.PauseAsync(started.Id, CancellationToken.None);
        await Eventually.TrueAsync(() => Marks().Contains("first", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the running task to finish");
        // Unpaused, the next task starts within a second of the first ending; paused, it must not for 3 seconds.
        var heldBack = !await StartsWithinAsync(() => Marks().Contains("second", StringComparison.Ordinal), TimeSpan.FromSeconds(3));
        var resumed = await service.ResumeAsync(started.Id, CancellationToken.None);
        await Eventually.TrueAsync(() => Marks().Contains("second", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the next task to start after resume");
        var canceled = await service.CancelAsync(started.Id, CancellationToken.None);
        var second = await Eventually.ReturnsAsync(async () => (await host.Audit.GetTraceAsync(started.TraceTag, CancellationToken.None)).Executions.Single(e => e.WorkflowTask == "second"),
            e => ExecutionStatus.IsTerminal(e.Status), TimeSpan.FromSeconds(30));

        Assert.Equal(ExecutionStatus.Paused, paused.Status);
        Assert.True(heldBack, "the next task started while the workflow was paused");
        Assert.Equal(ExecutionStatus.Running, resumed.Status);
        Assert.Equal(ExecutionStatus.Canceled, canceled.Status);
        Assert.Equal(ExecutionStatus.Canceled, second.Status);
        Assert.DoesNotContain("late", Marks(), StringComparison.Ordinal);
        Assert.Equal(ExecutionStatus.Canceled, (await host.Audit.GetExecutionAsync(started.Id, CancellationToken.None))!.Status);
        // Its orchestration was stopped, so the cancel itself announces the end, for rules to chain on.
        var announced = (await Eventually.ReturnsAsync(() => host.Audit.GetTraceAsync(started.TraceTag, CancellationToken.None),
            t => t.TriggerInstances.Any(ti => ti.TriggerType == CoreTriggers.ActionTrigger && ti.Payload!["execution_id"]!.GetValue<string>() == started.Id),
            TimeSpan.FromSeconds(30))).TriggerInstances.Single(ti => ti.TriggerType == CoreTriggers.ActionTrigger && ti.Payload!["execution_id"]!.GetValue<string>() == started.Id);
        Assert.Equal(ExecutionStatus.Canceled, announced.Payload!["status"]!.GetValue<string>());
        var notAWorkflow = await service.RunAsync("core.noop", [], null, TestCallers.Admin.User, CancellationToken.None);
        await host.WaitForExecutionAsync(notAWorkflow.Id);
        Assert.Contains("only workflows pause", (await Assert.ThrowsAsync<InvalidOperationException>(() => service.PauseAsync(notAWorkflow.Id, CancellationToken.None))).Message, StringComparison.Ordinal);
        File.Delete(marks);
    }

    [Fact]
    public async Task AConcurrencyPolicy_HoldsForAWorkflowsWholeRun_AndItsEndOrCancelFreesTheSlot()
    {
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "nap", """
            version: 1.0
            input: [seconds]
            tasks:
              first:
                action: core.local
                input: {cmd: "sleep <% ctx(seconds) %>"}
                next: [{do: second}]
              second:
                action: core.local
                input: {cmd: "sleep <% ctx(seconds) %>"}
            """, "  seconds: {type: integer, default: 1}\n");
        packs.Write("wf/policies/one.yaml", "name: one\nresource_ref: wf.nap\npolicy_type: action.concurrency\nparameters: {threshold: 1, action: cancel}\n");
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();

        // While the first runs its tasks (it was handed off to its engine long before), a second is over the threshold.
        var first = await service.RunAsync("wf.nap", new JsonObject { ["seconds"] = 2 }, null, TestCallers.Admin.User, CancellationToken.None);
        await Eventually.ReturnsAsync(() => host.Audit.GetTraceAsync(first.TraceTag, CancellationToken.None),
            t => t.Executions.Any(e => e.ParentId == first.Id && e.Status == ExecutionStatus.Running), TimeSpan.FromSeconds(30));
        var second = await host.WaitForExecutionAsync((await service.RunAsync("wf.nap", [], null, TestCallers.Admin.User, CancellationToken.None)).Id, TimeSpan.FromSeconds(60));
        var firstDone = await host.WaitForExecutionAsync(first.Id, TimeSpan.FromSeconds(90));

        // Its end gave the slot back: the next one runs, and canceling it gives the slot back too.
        var third = await service.RunAsync("wf.nap", new JsonObject { ["seconds"] = 30 }, null, TestCallers.Admin.User, CancellationToken.None);
        await Eventually.ReturnsAsync(() => host.Audit.GetTraceAsync(third.TraceTag, CancellationToken.None),
            t => t.Executions.Any(e => e.ParentId == third.Id && e.Status == ExecutionStatus.Running), TimeSpan.FromSeconds(30));
        await service.CancelAsync(third.Id, CancellationToken.None);
        var fourth = await host.WaitForExecutionAsync((await service.RunAsync("wf.nap", [], null, TestCallers.Admin.User, CancellationToken.None)).Id, TimeSpan.FromSeconds(90));

        Assert.Equal(ExecutionStatus.Canceled, second.Status);
        Assert.StartsWith("canceled by policy wf.one", second.Error, StringComparison.Ordinal);
        Assert.Equal(ExecutionStatus.Succeeded, firstDone.Status);
        Assert.Equal(ExecutionStatus.Canceled, (await host.Audit.GetExecutionAsync(third.Id, CancellationToken.None))!.Status);
        Assert.Equal(ExecutionStatus.Succeeded, fourth.Status);
    }

    [Theory]
    [InlineData("delay")]
    [InlineData("cancel")]
    public async Task AConcurrencyPolicy_OnASubWorkflow_HoldsWhenAWorkflowStartsIt(string action)
    {
        // Two branches start the same sub-workflow at once; its policy allows one at a time, as in StackStorm, where
        // every execution of the action goes through the policy, whoever started it.
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "nap", """
            version: 1.0
            tasks:
              sleep:
                action: core.local
                input: {cmd: "sleep 2"}
            """);
        WriteWorkflow(packs, "both", """
            version: 1.0
            tasks:
              start:
                action: core.noop
                next: [{do: [left, right]}]
              left:
                action: wf.nap
              right:
                action: wf.nap
            """);
        packs.Write("wf/policies/one.yaml", $"name: one\nresource_ref: wf.nap\npolicy_type: action.concurrency\nparameters: {{threshold: 1, action: {action}}}\n");
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.both", [], null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        var naps = (await host.Audit.GetTraceAsync(started.TraceTag, CancellationToken.None)).Executions.Where(e => e.ActionRef == "wf.nap").ToList();

        Assert.Equal(2, naps.Count);
        Assert.Equal(1, ExecutionOverlap.MaxRunningAtOnce(naps));
        if (action == "delay")
        {
            Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
            Assert.All(naps, n => Assert.Equal(ExecutionStatus.Succeeded, n.Status));
            Assert.Contains(naps, n => n.History.Any(h => h.Status == ExecutionStatus.Delayed));
        }
        else
        {
            Assert.Equal(ExecutionStatus.Canceled, workflow.Status); // a task canceled on its own cancels its workflow, as in Orquesta
            Assert.Equal([ExecutionStatus.Canceled, ExecutionStatus.Succeeded], naps.Select(n => n.Status).Order(StringComparer.Ordinal));
            Assert.StartsWith("canceled by policy wf.one", naps.Single(n => n.Status == ExecutionStatus.Canceled).Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ManySubWorkflowsWaitingForOneSlot_HoldNoWorker_SoTheHolderFinishesAndAllRun()
    {
        // More waiters than the task hub runs activities at once (10): waiting inside an activity would starve the
        // holder's own tasks, and nothing would ever run again.
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "nap", """
            version: 1.0
            tasks:
              sleep:
                action: core.local
                input: {cmd: "sleep 0.1"}
            """);
        WriteWorkflow(packs, "many", """
            version: 1.0
            tasks:
              each:
                with: <% [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] %>
                action: wf.nap
            """);
        packs.Write("wf/policies/one.yaml", "name: one\nresource_ref: wf.nap\npolicy_type: action.concurrency\nparameters: {threshold: 1, action: delay}\n");
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.many", [], null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(240));
        var naps = (await host.Audit.GetTraceAsync(started.TraceTag, CancellationToken.None)).Executions.Where(e => e.ActionRef == "wf.nap").ToList();

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        Assert.Equal(11, naps.Count(n => n.Status == ExecutionStatus.Succeeded));
        Assert.Equal(1, ExecutionOverlap.MaxRunningAtOnce(naps));
    }

    [Fact]
    public async Task ARetryPolicy_DoesNotRetryAWorkflowsTask_AsInStackStorm()
    {
        // The attempt would run outside the workflow, which has already taken the failure: a task's own retry does it.
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/flaky.yaml", "name: flaky\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: 'exit 1', immutable: true}\n");
        packs.Write("wf/policies/retry.yaml", "name: retry\nresource_ref: wf.flaky\npolicy_type: action.retry\nparameters: {retry_on: failure, max_retry_count: 2, delay: 0}\n");
        WriteWorkflow(packs, "calls_flaky", """
            version: 1.0
            tasks:
              t:
                action: wf.flaky
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();

        var workflow = await host.WaitForExecutionAsync((await service.RunAsync("wf.calls_flaky", [], null, TestCallers.Admin.User, CancellationToken.None)).Id, TimeSpan.FromSeconds(90));
        var alone = await host.WaitForExecutionAsync((await service.RunAsync("wf.flaky", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var retriedAlone = await Eventually.ReturnsAsync(() => host.Audit.GetTraceAsync(alone.TraceTag, CancellationToken.None),
            t => t.Executions.Count == 3 && t.Executions.All(e => ExecutionStatus.IsTerminal(e.Status)), TimeSpan.FromSeconds(60));

        Assert.Equal(ExecutionStatus.Failed, workflow.Status);
        var task = Assert.Single((await host.Audit.GetTraceAsync(workflow.TraceTag, CancellationToken.None)).Executions, e => e.ActionRef == "wf.flaky");
        Assert.Equal(workflow.Id, task.ParentId);
        Assert.Equal([0, 1, 2], retriedAlone.Executions.Select(e => e.RetryCount).Order()); // the policy itself works
    }

    [Fact]
    public async Task ReRunFromTheFailedTask_KeepsWhatSucceeded_AndRunsTheRest()
    {
        var marks = Path.Combine(Path.GetTempPath(), $"storm-rerun-{Guid.NewGuid():N}.log");
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "flaky", """
            version: 1.0
            input: [marks]
            tasks:
              prepare:
                action: core.local
                input: {cmd: 'echo prepare >> "$MARKS"; echo prepared', env: {MARKS: "<% ctx(marks) %>"}}
                next: [{publish: [{prepared: "<% result().stdout %>"}], do: flaky}]
              flaky:
                action: core.local
                input: {cmd: 'echo flaky >> "$MARKS"; test -f "$MARKS.fixed"', env: {MARKS: "<% ctx(marks) %>"}}
                next: [{when: "<% succeeded() %>", do: finish}]
              finish:
                action: core.local
                input: {cmd: 'echo finish >> "$MARKS"', env: {MARKS: "<% ctx(marks) %>"}}
            output: [{prepared: "<% ctx(prepared) %>"}]
            """, "  marks: {type: string, required: true}\n");
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();

        var original = await host.WaitForExecutionAsync((await service.RunAsync("wf.flaky", new JsonObject { ["marks"] = marks }, null, TestCallers.Admin.User, CancellationToken.None)).Id, TimeSpan.FromSeconds(60));
        await File.WriteAllTextAsync(marks + ".fixed", "");
        var fromFailed = await host.WaitForExecutionAsync((await service.ReRunAsync(original.Id, [], TestCallers.Admin.User, CancellationToken.None, ["flaky"])).Id, TimeSpan.FromSeconds(60));
        var whole = await host.WaitForExecutionAsync((await service.ReRunAsync(original.Id, [], TestCallers.Admin.User, CancellationToken.None)).Id, TimeSpan.FromSeconds(60));

        Assert.Equal(ExecutionStatus.Failed, original.Status);
        Assert.True(fromFailed.Status == ExecutionStatus.Succeeded, fromFailed.Error);
        Assert.Equal(original.Id, fromFailed.ReRunOf);
        Assert.Equal("prepared", fromFailed.Result!["output"]!["prepared"]!.GetValue<string>()); // the kept result flows on
        Assert.Equal(ExecutionStatus.Succeeded, whole.Status);
        // prepare: the original and the whole re-run (the re-run from flaky kept it); flaky: all three; finish: both re-runs.
        Assert.Equal(["prepare", "flaky", "flaky", "finish", "prepare", "flaky", "finish"], File.ReadAllLines(marks));
        File.Delete(marks);
        File.Delete(marks + ".fixed");
    }

    [Fact]
    public async Task Approval_PausesTheWorkflowUntilAnswered_AndAnExpiredOneFailsTheTask()
    {
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "guarded", """
            version: 1.0
            tasks:
              approve:
                action: core.ask
                input: {route: ops, ttl: 5}
                next:
                  - when: <% succeeded() and result().response.continue %>
                    do: act
                  - when: <% failed() %>
                    publish: [{outcome: "<% 'not approved: ' + task_status(approve) %>"}]
                    do: noop
              act:
                action: core.echo
                input: {message: acted}
                next: [{publish: [{outcome: "<% result().stdout %>"}]}]
            output: [{outcome: "<% ctx(outcome) %>"}]
            """);
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var (host, hub) = await StartAsync(packs, clock);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();
        var inquiries = host.Services.GetRequiredService<InquiryService>();
        var answered = await service.RunAsync("wf.guarded", [], null, TestCallers.Admin.User, CancellationToken.None);
        var question = await PendingApprovalAsync(host, answered);
        var stillRunning = (await host.Audit.GetExecutionAsync(answered.Id, CancellationToken.None))!.Status;
        await inquiries.RespondAsync(question.Id, new JsonObject { ["continue"] = true }, "alice", CancellationToken.None);
        var approved = await host.WaitForExecutionAsync(answered.Id, TimeSpan.FromSeconds(60));

        var ignored = await service.RunAsync("wf.guarded", [], null, TestCallers.Admin.User, CancellationToken.None);
        await PendingApprovalAsync(host, ignored);
        clock.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(1, await inquiries.ExpireDueAsync(CancellationToken.None));
        var expired = await host.WaitForExecutionAsync(ignored.Id, TimeSpan.FromSeconds(60));

        Assert.Equal(ExecutionStatus.Running, stillRunning);
        Assert.True(approved.Status == ExecutionStatus.Succeeded, approved.Error);
        Assert.Equal("acted", approved.Result!["output"]!["outcome"]!.GetValue<string>());
        Assert.True(expired.Status == ExecutionStatus.Succeeded, expired.Error); // the failure was handled by a transition
        Assert.Equal("not approved: failed", expired.Result!["output"]!["outcome"]!.GetValue<string>()); // an expired inquiry leaves its task failed, as in Orquesta
    }

    [Fact]
    public async Task EveryTask_IsCountedOnce_UnderItsOwnWorkflow_WhetherAnActivityAnAnswerOrASubWorkflowEndsIt()
    {
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "counted_inner", """
            version: 1.0
            tasks:
              check:
                action: core.echo
                input: {message: inner}
            """);
        WriteWorkflow(packs, "counted", """
            version: 1.0
            tasks:
              approve:
                action: core.ask
                input: {route: ops, ttl: 5}
                next: [{when: "<% succeeded() %>", do: [echo, sub, broken]}]
              echo:
                action: core.echo
                input: {message: hi}
              sub:
                action: wf.counted_inner
              broken:
                action: core.local
                input: {cmd: "exit 3"}
                next: [{when: "<% failed() %>", do: noop}]
            """);
        using var metrics = new MetricRecorder();
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.counted", [], null, TestCallers.Admin.User, CancellationToken.None);
        var question = await PendingApprovalAsync(host, started);
        await host.Services.GetRequiredService<InquiryService>().RespondAsync(question.Id, new JsonObject { ["continue"] = true }, "alice", CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        var outer = metrics.Named(StormMetrics.WorkflowTasksName, StormMetrics.WorkflowTag, "wf.counted");
        Assert.Equal([ExecutionStatus.Failed, ExecutionStatus.Succeeded, ExecutionStatus.Succeeded, ExecutionStatus.Succeeded],
            outer.Select(m => (string)m.Tags[StormMetrics.StatusTag]!).Order());
        Assert.Equal(ExecutionStatus.Succeeded, Assert.Single(metrics.Named(StormMetrics.WorkflowTasksName, StormMetrics.WorkflowTag, "wf.counted_inner")).Tags[StormMetrics.StatusTag]);
        Assert.Equal(4, metrics.Named(StormMetrics.WorkflowTaskDurationName, StormMetrics.WorkflowTag, "wf.counted").Count);
    }

    [Fact]
    public async Task SubWorkflow_RunsAsASubOrchestration_AndItsFailureIsTheCallingTasks()
    {
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "inner", """
            version: 1.0
            input: [name, healthy]
            tasks:
              check:
                action: core.local
                input: {cmd: "echo checked <% ctx(name) %>; test <% ctx(healthy) %> = yes"}
                next: [{when: "<% succeeded() %>", publish: [{line: "<% result().stdout %>"}]}]
            output: [{line: "<% ctx(line) %>"}]
            """, "  name: {type: string, required: true}\n  healthy: {type: string, default: 'yes'}\n");
        WriteWorkflow(packs, "outer", """
            version: 1.0
            tasks:
              good:
                action: wf.inner
                input: {name: web1}
                next: [{publish: [{good_line: "<% result().output.line %>"}], do: bad}]
              bad:
                action: wf.inner
                input: {name: web2, healthy: "no"}
                next: [{when: "<% failed() %>", publish: [{bad_status: "<% task_status(bad) %>"}], do: noop}]
            output: [{good: "<% ctx(good_line) %>"}, {bad: "<% ctx(bad_status) %>"}]
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.outer", [], null, TestCallers.Admin.User, CancellationToken.None);
        var outer = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        var trace = await host.Audit.GetTraceAsync(outer.TraceTag, CancellationToken.None);

        Assert.True(outer.Status == ExecutionStatus.Succeeded, outer.Error);
        Assert.Equal("checked web1", outer.Result!["output"]!["good"]!.GetValue<string>());
        Assert.Equal("failed", outer.Result["output"]!["bad"]!.GetValue<string>());
        var subs = trace.Executions.Where(e => e.ParentId == outer.Id).OrderBy(e => e.WorkflowTask).ToList();
        Assert.Equal(["bad", "good"], subs.Select(s => s.WorkflowTask));
        Assert.Equal([ExecutionStatus.Failed, ExecutionStatus.Succeeded], subs.Select(s => s.Status));
        Assert.StartsWith("task check failed", subs[0].Error, StringComparison.Ordinal);
        foreach (var sub in subs)
        {
            // Each sub-workflow is an orchestration of its own, started by the outer one, with its own task tree.
            var state = await hub.GetStateAsync(sub.Id);
            Assert.Equal(outer.Id, state?.ParentInstance?.OrchestrationInstance.InstanceId);
            Assert.Equal("check", Assert.Single(trace.Executions, e => e.ParentId == sub.Id).WorkflowTask);
        }
    }

    [Fact]
    public async Task ReRun_NamingATaskInsideASubWorkflow_ReRunsTheSubWorkflowFromThatTask()
    {
        var marks = Path.Combine(Path.GetTempPath(), $"storm-subrerun-{Guid.NewGuid():N}.log");
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "steps", """
            version: 1.0
            input: [marks]
            tasks:
              prepare:
                action: core.local
                input: {cmd: 'echo prepare >> "$MARKS"', env: {MARKS: "<% ctx(marks) %>"}}
                next: [{do: flaky}]
              flaky:
                action: core.local
                input: {cmd: 'echo flaky >> "$MARKS"; test -f "$MARKS.fixed"', env: {MARKS: "<% ctx(marks) %>"}}
            """, "  marks: {type: string, required: true}\n");
        WriteWorkflow(packs, "caller", """
            version: 1.0
            input: [marks]
            tasks:
              sub:
                action: wf.steps
                input: {marks: "<% ctx(marks) %>"}
            """, "  marks: {type: string, required: true}\n");
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();

        var original = await host.WaitForExecutionAsync((await service.RunAsync("wf.caller", new JsonObject { ["marks"] = marks }, null, TestCallers.Admin.User, CancellationToken.None)).Id, TimeSpan.FromSeconds(60));
        await File.WriteAllTextAsync(marks + ".fixed", "");
        var reRun = await host.WaitForExecutionAsync((await service.ReRunAsync(original.Id, [], TestCallers.Admin.User, CancellationToken.None, ["sub.flaky"])).Id, TimeSpan.FromSeconds(60));

        Assert.Equal(ExecutionStatus.Failed, original.Status);
        Assert.True(reRun.Status == ExecutionStatus.Succeeded, reRun.Error);
        Assert.Equal(["prepare", "flaky", "flaky"], File.ReadAllLines(marks)); // prepare kept its result inside the sub-workflow
        File.Delete(marks);
        File.Delete(marks + ".fixed");
    }

    [Fact]
    public async Task TaskDelay_AndRetryDelay_WaitAtLeastTheStatedSeconds_FromWhenTheyAreDue()
    {
        // Orquesta: delay (and retry's delay) holds the action back that many seconds after the task is due — after
        // the task before it ended, or after the failed attempt. Measured between the executions' records.
        using var packs = new TempPacks().WithPack("wf");
        WriteWorkflow(packs, "waits", """
            version: 1.0
            tasks:
              start:
                action: core.noop
                next: [{do: [one, two, flaky]}]
              one: {action: core.noop, delay: 1}
              two: {action: core.noop, delay: 2}
              flaky:
                action: core.local
                input: {cmd: "exit 1"}
                retry: {count: 1, delay: 1}
                next: [{when: <% failed() %>, do: noop}]
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.waits", [], null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        var tasks = (await host.Audit.GetTraceAsync(workflow.TraceTag, CancellationToken.None)).Executions.Where(e => e.ParentId == workflow.Id)
            .OrderBy(e => e.StartTimestamp).ToList();
        var start = tasks.Single(t => t.WorkflowTask == "start");
        var flaky = tasks.Where(t => t.WorkflowTask == "flaky").ToList();
        var waits = new Dictionary<string, TimeSpan>
        {
            ["one"] = tasks.Single(t => t.WorkflowTask == "one").StartTimestamp - start.EndTimestamp!.Value,
            ["two"] = tasks.Single(t => t.WorkflowTask == "two").StartTimestamp - start.EndTimestamp!.Value,
            ["retry"] = flaky[1].StartTimestamp - flaky[0].EndTimestamp!.Value,
        };
        var stated = new Dictionary<string, double> { ["one"] = 1, ["two"] = 2, ["retry"] = 1 };

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        Assert.Equal(2, flaky.Count);
        var figures = string.Join(", ", waits.Select(w => $"{w.Key} {w.Value.TotalSeconds:0.000}s"));
        Assert.All(waits, w => Assert.True(w.Value.TotalSeconds >= stated[w.Key] && w.Value.TotalSeconds < stated[w.Key] + 1.5, $"{w.Key} waited outside [stated, stated + 1.5 s]: {figures}"));
        Console.WriteLine($"measured delays: {figures}");
    }

    /// <summary>The workflow's <c>approve</c> task once it waits for its answer; fails naming every task if the workflow ended first.</summary>
    private static async Task<ExecutionRecord> PendingApprovalAsync(StormTestHost host, ExecutionRecord workflow)
    {
        var executions = await Eventually.ReturnsAsync(async () => (await host.Audit.GetTraceAsync(workflow.TraceTag, CancellationToken.None)).Executions,
            e => e.Any(x => x.WorkflowTask == "approve" && x.Status == ExecutionStatus.Pending || x.Id == workflow.Id && ExecutionStatus.IsTerminal(x.Status)), TimeSpan.FromSeconds(30));
        return executions.SingleOrDefault(x => x.WorkflowTask == "approve" && x.Status == ExecutionStatus.Pending)
            ?? throw new Xunit.Sdk.XunitException($"no approval asked: {string.Join("; ", executions.Select(x => $"{x.WorkflowTask ?? x.ActionRef} {x.Status} {x.Error} {x.Result?.ToJsonString()}"))}");
    }

    private static async Task<bool> StartsWithinAsync(Func<bool> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(Eventually.PollInterval);
        }

        return condition();
    }
}
