using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>The local stack as users run it: a real <c>storm serve</c> process, real HTTP, the audit in Azurite.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class ServeTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private readonly HttpClient _http = StormProcess.NewHttpClient();
    private readonly string _journal = Path.Combine(Path.GetTempPath(), "storm-e2e-journal-" + Guid.NewGuid().ToString("N")[..8]);
    private StormProcess _storm = null!;

    // The notify example posts to a test server on loopback, which the egress guard refuses unless allowed.
    public async Task InitializeAsync() => _storm = await StormProcess.ServeAsync(
        new Dictionary<string, string> { ["Storm__AllowedNetworks__0"] = "127.0.0.0/8" }, "--storage", azurite.ConnectionString, "--audit-journal", _journal);

    public async Task DisposeAsync()
    {
        await _storm.DisposeAsync();
        _http.Dispose();
        if (Directory.Exists(_journal))
        {
            Directory.Delete(_journal, recursive: true);
        }
    }

    private TableAuditStore Audit() => new(Options.Create(new AzureStorageOptions { ConnectionString = azurite.ConnectionString }), TimeProvider.System);

    private async Task<(int Status, JsonNode? Body)> PostAsync(string path, string body)
    {
        using var response = await _http.PostAsync(_storm.Url + path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    private Task<CliResult> CliAsync(params string[] arguments) => StormProcess.RunAsync([.. arguments, "--api", _storm.Url]);

    [Fact]
    public async Task PackList_ShowsThePacksThatLoaded()
    {
        var list = await CliAsync("pack", "list");
        var json = await CliAsync("pack", "list", "--json");

        Assert.Equal(0, list.ExitCode);
        Assert.Contains("examples", list.StdOut, StringComparison.Ordinal);
        var packs = JsonNode.Parse(json.StdOut)!.AsArray();
        Assert.All(packs, p => Assert.True(p!["loaded"]!.GetValue<bool>()));
        Assert.True(packs.Single(p => p!["ref"]!.GetValue<string>() == "examples")!["rules"]!.GetValue<int>() > 0);
    }

    [Fact]
    public async Task Serve_WithABrokenPackBesideAGoodOne_LeavesItOut_SaysWhy_AndRunsTheGoodOne()
    {
        using var packs = new TempPacks().WithPack("good").WithPack("broken");
        packs.Write("good/actions/hi.yaml", "name: hi\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: echo hi from good}\n");
        packs.Write("good/rules/hi.yaml", "name: hi\npack: good\ntrigger: {type: core.st2.webhook, parameters: {url: good-hi}}\naction: {ref: good.hi}\n");
        packs.Write("broken/rules/bad.yaml", "name: bad\npack: broken\ntrigger: {type: core.st2.webhook, parameters: {url: bad}}\naction: {ref: broken.missing}\n");
        packs.WithRepositoryCore();

        var journal = Path.Combine(Path.GetTempPath(), $"storm-journal-{Guid.NewGuid():N}");
        await using var storm = await StormProcess.ServeAsync("--packs", packs.Root, "--storage", azurite.ConnectionString, "--audit-journal", journal);
        using var http = StormProcess.NewHttpClient();
        using var response = await http.PostAsync(storm.Url + "/api/v1/webhooks/good-hi", new StringContent("{}", Encoding.UTF8, "application/json"));
        var traceTag = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["trace_tag"]!.GetValue<string>();
        var trace = await Eventually.ReturnsAsync(() => Audit().GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status), what: "the good pack's execution");
        var list = await StormProcess.RunAsync("pack", "list", "--api", storm.Url);

        Assert.Equal(ExecutionStatus.Succeeded, trace.Executions[0].Status);
        Assert.Equal("hi from good", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
        Assert.Contains("warning: pack 'broken' is left out: 1 problem(s):", storm.Output, StringComparison.Ordinal);
        Assert.Contains("2 of 3 loaded", storm.Output, StringComparison.Ordinal);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("broken: left out: ", list.StdOut, StringComparison.Ordinal);
        Assert.Contains("action 'broken.missing' does not exist", list.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HelloWebhook_SucceedsWithHelloStorm_AndTheAuditLinksItByOneTraceTag()
    {
        var (status, body) = await PostAsync("/api/v1/webhooks/hello", """{"name":"storm"}""");

        Assert.Equal(202, status);
        var traceTag = body!["trace_tag"]!.GetValue<string>();
        var audit = Audit();
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status) && t.HasProcessedWebhook(),
            what: "the hello execution in Table Storage");
        var execution = trace.Executions[0];
        Assert.Equal(ExecutionStatus.Succeeded, execution.Status);
        Assert.Equal("Hello storm", execution.Result!["stdout"]!.GetValue<string>());
        Assert.Equal(body["trigger_instance_id"]!.GetValue<string>(), trace.Webhook().Id);
        var enforcement = Assert.Single(trace.RuleEnforcements);
        Assert.Equal("examples.hello", enforcement.RuleRef);
        Assert.Equal(execution.Id, enforcement.ExecutionId);
        Assert.All(new[] { trace.Webhook().TraceTag, enforcement.TraceTag, execution.TraceTag }, t => Assert.Equal(traceTag, t));

        var list = await CliAsync("execution", "list");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains(execution.Id, list.StdOut);
        var get = await CliAsync("execution", "get", execution.Id);
        Assert.Equal(0, get.ExitCode);
        Assert.Contains("status: succeeded", get.StdOut);
        Assert.Contains("Hello storm", get.StdOut);
        var json = await CliAsync("execution", "get", execution.Id, "--json");
        Assert.Equal("Hello storm", JsonNode.Parse(json.StdOut)!["result"]!["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task Purge_FromTheCli_DeletesTheDaysBeforeTheDate_KeepsUnfinishedExecutions_AndRefusesAFutureDate()
    {
        var audit = Audit();
        var old = DateTimeOffset.UtcNow.AddDays(-60);
        ExecutionRecord Record(DateTimeOffset at, string status) => new()
        {
            Id = Engine.StormIds.New(at), ActionRef = "core.noop", RunnerType = "noop", TraceTag = "purge-e2e", Parameters = [],
            Status = status, StartTimestamp = at, History = [new StatusChange(status, at)],
        };
        var finished = new[] { Record(old, ExecutionStatus.Succeeded), Record(old.AddDays(1), ExecutionStatus.Failed) };
        var running = Record(old, ExecutionStatus.Running);
        foreach (var record in finished.Append(running))
        {
            Assert.True(await audit.TryCreateExecutionAsync(record, CancellationToken.None));
        }

        var before = DateTimeOffset.UtcNow.AddDays(-30).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        var purged = await CliAsync("purge", "--before", before);
        var future = await CliAsync("purge", "--before", DateTimeOffset.UtcNow.AddDays(2).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture));
        var notADate = await CliAsync("purge", "--before", "last week");

        Assert.Equal(0, purged.ExitCode);
        Assert.Contains($"before {before}", purged.StdOut, StringComparison.Ordinal);
        Assert.Contains("1 with no unfinished execution deleted whole", purged.StdOut, StringComparison.Ordinal);
        Assert.Contains("from the others 1 execution(s)", purged.StdOut, StringComparison.Ordinal);
        Assert.Contains("kept 1 unfinished execution(s)", purged.StdOut, StringComparison.Ordinal);
        foreach (var record in finished)
        {
            Assert.Null(await audit.GetExecutionAsync(record.Id, CancellationToken.None));
        }

        Assert.NotNull(await audit.GetExecutionAsync(running.Id, CancellationToken.None));
        Assert.Equal(2, future.ExitCode);
        Assert.Contains("in the future", future.StdErr, StringComparison.Ordinal);
        Assert.Equal(2, notADate.ExitCode);
        Assert.Contains("--before 'last week' is not a date (YYYY-MM-DD)", notADate.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HelloWebhook_WithShellSyntaxInTheName_PrintsItAndRunsNothing()
    {
        var marker = Path.Combine(Path.GetTempPath(), "storm-e2e-" + Guid.NewGuid().ToString("N"));
        var name = $"$(touch {marker}); `touch {marker}`";

        var (_, body) = await PostAsync("/api/v1/webhooks/hello", new JsonObject { ["name"] = name }.ToJsonString());
        var trace = await Eventually.ReturnsAsync(() => Audit().GetTraceAsync(body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));

        Assert.Equal($"Hello {name}", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task NotifyExample_SendsTheRenderedRequestToTheEndpoint()
    {
        using var listener = new HttpListener();
        var port = AzuriteFixture.FreePort();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var served = listener.GetContextAsync();

        var (status, _) = await PostAsync("/api/v1/webhooks/notify", new JsonObject
        {
            ["severity"] = "critical",
            ["service"] = "checkout",
            ["message"] = "p99 above 2 s",
            ["notify_url"] = $"http://127.0.0.1:{port}/chat",
        }.ToJsonString());
        var context = await served.WaitAsync(TimeSpan.FromSeconds(30));
        using var reader = new StreamReader(context.Request.InputStream);
        var received = JsonNode.Parse(await reader.ReadToEndAsync())!;
        context.Response.StatusCode = 200;
        context.Response.Close();

        Assert.Equal(202, status);
        Assert.Equal("POST", context.Request.HttpMethod);
        Assert.Equal("/chat", context.Request.Url!.AbsolutePath);
        Assert.Equal("serverlessstorm", context.Request.Headers["X-Alert-Source"]);
        Assert.Equal("[critical] checkout: p99 above 2 s", received["text"]!.GetValue<string>());
        Assert.Equal("checkout", received["service"]!.GetValue<string>());
    }

    [Fact]
    public async Task MalformedJson_Is400WithTheReason_AndTheRejectionIsRecorded()
    {
        var (status, body) = await PostAsync("/api/v1/webhooks/hello", """{"name": "storm" """);

        Assert.Equal(400, status);
        Assert.Contains("not valid JSON", body!["faultstring"]!.GetValue<string>());
        var rejectionId = body["rejection_id"]!.GetValue<string>();
        using var response = await _http.GetAsync(_storm.Url + "/api/v1/triggerinstances?status=rejected&limit=1000");
        var rejected = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsArray();
        var record = Assert.Single(rejected, r => r!["id"]!.GetValue<string>() == rejectionId)!;
        Assert.Contains("not valid JSON", record["reason"]!.GetValue<string>());
        Assert.Equal("""{"name": "storm" """, record["payload"]!["body_text"]!.GetValue<string>());
    }

    [Fact]
    public async Task UnknownHook_Is404()
    {
        var (status, body) = await PostAsync("/api/v1/webhooks/no-such-hook", "{}");

        Assert.Equal(404, status);
        Assert.Contains("no-such-hook", body!["faultstring"]!.GetValue<string>());
    }

    [Fact]
    public async Task Run_PrintsTheResult_AndFailsOnBadParameters()
    {
        var ok = await CliAsync("run", "core.echo", "message=hi there");
        Assert.Equal(0, ok.ExitCode);
        Assert.Contains("status: succeeded", ok.StdOut);
        Assert.Contains("hi there", ok.StdOut);

        var failed = await CliAsync("run", "core.local", "cmd=exit 4");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("status: failed", failed.StdOut);

        var invalid = await CliAsync("run", "core.local", "timeout=soon");
        Assert.Equal(2, invalid.ExitCode);
        Assert.Contains("'cmd' is required", invalid.StdErr);
        Assert.Contains("'timeout' must be an integer", invalid.StdErr);
    }

    [Fact]
    public async Task KeyVerbs_StoreReadListAndDelete_AndRunsReadTheDatastore()
    {
        var name = "greeting" + Guid.NewGuid().ToString("N")[..6];
        Assert.Equal(0, (await CliAsync("key", "set", name, "hello from kv")).ExitCode);
        Assert.Equal(0, (await CliAsync("key", "set", name + "_secret", "canary-2718", "--secret")).ExitCode);

        var get = await CliAsync("key", "get", name);
        var masked = await CliAsync("key", "get", name + "_secret");
        var decrypted = await CliAsync("key", "get", name + "_secret", "--decrypt");
        var list = await CliAsync("key", "list", "--prefix", name, "--json");
        var run = await CliAsync("run", "core.local", $"cmd=echo '{{{{ st2kv.system.{name} }}}}'");
        var delete = await CliAsync("key", "delete", name);
        var missing = await CliAsync("key", "get", name);

        Assert.Contains("value: hello from kv", get.StdOut);
        Assert.Contains("value: ********", masked.StdOut);
        Assert.Contains("value: canary-2718", decrypted.StdOut);
        Assert.Equal(2, JsonNode.Parse(list.StdOut)!.AsArray().Count);
        Assert.Contains("hello from kv", run.StdOut);
        Assert.Equal(0, delete.ExitCode);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("does not exist", missing.StdErr);
    }

    [Fact]
    public async Task ExecutionTail_OfAWorkflow_FollowsEachTasksOutput()
    {
        var appDir = Path.Combine(Path.GetTempPath(), $"storm-tail-{Guid.NewGuid():N}");
        var (_, created) = await PostAsync("/api/v1/executions", new JsonObject
        {
            ["action"] = "examples.deploy",
            ["parameters"] = new JsonObject { ["version"] = "3.1", ["app_dir"] = appDir },
        }.ToJsonString());

        var tail = await CliAsync("execution", "tail", created!["id"]!.GetValue<string>());

        Assert.Equal(0, tail.ExitCode);
        Assert.Equal("none\nhealthy\n", tail.StdOut); // remember_current printed "none", install nothing, health_check "healthy"
        var tasks = tail.StdErr.Split('\n').Where(l => l.StartsWith("task ", StringComparison.Ordinal)).Select(l => $"{l.Split(' ')[1]} {l.Split(' ')[^1]}").ToList();
        Assert.Equal(["remember_current started", "remember_current succeeded", "install started", "install succeeded", "health_check started", "health_check succeeded"], tasks);
        Directory.Delete(appDir, recursive: true);
    }

    [Fact]
    public async Task ExecutionTail_OfParallelTasks_ShowsTheirOutputAsItComes_NotOneTaskAfterTheOther()
    {
        // Two branches that take turns, each step waiting for the other's: only a tail that follows both at once
        // prints the steps in the order they happened.
        using var packs = new TempPacks().WithPack("par");
        packs.Write("par/actions/turns.yaml", "name: turns\nrunner_type: orquesta\nentry_point: workflows/turns.yaml\nparameters:\n  dir: {type: string, required: true}\n");
        packs.Write("par/actions/workflows/turns.yaml", """
            version: 1.0
            input: [dir]
            tasks:
              start:
                action: core.noop
                next: [{do: [left, right]}]
              left:
                action: core.local
                input:
                  cmd: 'd="<% ctx(dir) %>"; echo left-1; sleep 1; touch "$d/l1"; until [ -e "$d/r1" ]; do sleep 0.1; done; echo left-2; sleep 1; touch "$d/l2"'
                  timeout: 60
              right:
                action: core.local
                input:
                  cmd: 'd="<% ctx(dir) %>"; until [ -e "$d/l1" ]; do sleep 0.1; done; echo right-1; sleep 1; touch "$d/r1"; until [ -e "$d/l2" ]; do sleep 0.1; done; echo right-2'
                  timeout: 60
            """);
        var dir = Directory.CreateTempSubdirectory("storm-turns-").FullName;
        // Its own prefix: its own audit journal and task hub, beside the class's server.
        await using var storm = await StormProcess.ServeAsync(new Dictionary<string, string> { ["Storage__Prefix"] = azurite.NewStorageOptions().Prefix },
            "--packs", packs.Root, "--storage", azurite.ConnectionString, "--audit-journal", Path.Combine(dir, "journal"));
        using var created = await _http.PostAsync(storm.Url + "/api/v1/executions",
            new StringContent(new JsonObject { ["action"] = "par.turns", ["parameters"] = new JsonObject { ["dir"] = dir } }.ToJsonString(), Encoding.UTF8, "application/json"));
        var id = JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();

        var tail = await StormProcess.RunAsync("execution", "tail", id, "--api", storm.Url);

        Assert.True(tail.ExitCode == 0, tail.ToString());
        Assert.Equal("left-1\nright-1\nleft-2\nright-2\n", tail.StdOut);
        Assert.Contains("--- task right (", tail.StdErr);
        Assert.Contains("--- task left (", tail.StdErr);
        await storm.StopAsync(); // it writes its journal in there until it stops
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task ExecutionTail_OfAWorkflowCanceledWhileATaskWaitsForAPerson_Ends()
    {
        // The approval task stays pending when its workflow is canceled: the tail must still end with the workflow.
        var cache = Path.Combine(Path.GetTempPath(), $"storm-tail-cache-{Guid.NewGuid():N}");
        Directory.CreateDirectory(cache);
        await File.WriteAllBytesAsync(Path.Combine(cache, "blob"), new byte[8 * 1024]);
        var (_, created) = await PostAsync("/api/v1/executions", new JsonObject
        {
            ["action"] = "examples.remediate",
            ["parameters"] = new JsonObject { ["cache_dir"] = cache, ["limit_kb"] = 1 },
        }.ToJsonString());
        var id = created!["id"]!.GetValue<string>();
        await Eventually.ReturnsAsync(() => _http.GetStringAsync($"{_storm.Url}/api/v1/executions/{id}/output"),
            body => JsonNode.Parse(body)!["children"]!.AsArray().Any(c => c!["task"]!.GetValue<string>() == "approve" && c["status"]!.GetValue<string>() == "pending"),
            TimeSpan.FromSeconds(60));

        var tail = CliAsync("execution", "tail", id);
        await Task.Delay(TimeSpan.FromSeconds(1));
        var cancel = await CliAsync("execution", "cancel", id);
        var tailed = await tail;

        Assert.Equal(0, cancel.ExitCode);
        Assert.Equal(1, tailed.ExitCode);
        Assert.Contains("task approve (", tailed.StdErr);
        Assert.Contains($"execution {id} canceled", tailed.StdErr);
        Directory.Delete(cache, recursive: true);
    }

    [Fact]
    public async Task ExecutionTail_FollowsOutputLive_AndReRunAndCancelWork()
    {
        var (_, created) = await PostAsync("/api/v1/executions", """{"action": "core.local", "parameters": {"cmd": "for i in 1 2 3; do echo line $i; sleep 0.3; done; echo oops >&2"}}""");
        var id = created!["id"]!.GetValue<string>();

        var tail = await CliAsync("execution", "tail", id);
        var reRun = await CliAsync("execution", "re-run", id, "--json");
        var (_, slow) = await PostAsync("/api/v1/executions", """{"action": "core.local", "parameters": {"cmd": "sleep 30"}}""");
        var slowId = slow!["id"]!.GetValue<string>();
        await Eventually.ReturnsAsync(() => _http.GetStringAsync($"{_storm.Url}/api/v1/executions/{slowId}"), body => body.Contains("\"running\"", StringComparison.Ordinal));
        var cancel = await CliAsync("execution", "cancel", slowId);
        var canceled = await Eventually.ReturnsAsync(() => _http.GetStringAsync($"{_storm.Url}/api/v1/executions/{slowId}"), body => body.Contains("\"canceled\"", StringComparison.Ordinal));

        Assert.Equal(0, tail.ExitCode);
        Assert.Equal("line 1\nline 2\nline 3\n", tail.StdOut);
        Assert.Contains("oops", tail.StdErr);
        Assert.Equal(0, reRun.ExitCode);
        Assert.Equal(id, JsonNode.Parse(reRun.StdOut)!["re_run_of"]!.GetValue<string>());
        Assert.Equal(0, cancel.ExitCode);
        Assert.Contains("canceling", cancel.StdOut);
        Assert.Contains("canceled", canceled);
    }

    [Fact]
    public async Task Run_OfAWorkflowWaitingForAnApproval_SaysWhichInquiryAndHowToAnswer_AndGetShowsTheWaitingTask()
    {
        var cache = Path.Combine(Path.GetTempPath(), $"storm-approval-{Guid.NewGuid():N}");
        Directory.CreateDirectory(cache);
        await File.WriteAllBytesAsync(Path.Combine(cache, "blob"), new byte[8 * 1024]);

        var run = await CliAsync("run", "examples.remediate", $"cache_dir={cache}", "limit_kb=1", "--timeout", "90");
        var id = run.StdOut.Split('\n').First(l => l.StartsWith("id: ", StringComparison.Ordinal))["id: ".Length..].Trim();
        var get = await CliAsync("execution", "get", id);
        var inquiry = get.StdOut.Split('\n').Single(l => l.Contains("- approve (core.ask): pending", StringComparison.Ordinal)).Split("  ", StringSplitOptions.RemoveEmptyEntries)[1].Trim();
        var answered = await CliAsync("inquiry", "respond", inquiry, "--data", """{"continue": false}""");
        var done = await Eventually.ReturnsAsync(() => CliAsync("execution", "get", id), r => r.StdOut.Contains("status: succeeded", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        Assert.Equal(0, run.ExitCode);
        Assert.Contains($"workflow {id} is waiting for an approval: task approve asks inquiry {inquiry}; answer it with: storm inquiry respond {inquiry} --data", run.StdOut);
        Assert.Contains("- measure (core.local): succeeded", get.StdOut);
        Assert.Contains($"<- waiting for a response: storm inquiry respond {inquiry}", get.StdOut);
        Assert.Equal(0, answered.ExitCode);
        Assert.Contains("- approve (core.ask): succeeded", done.StdOut);
        Directory.Delete(cache, recursive: true);
    }

    [Fact]
    public async Task InquiryVerbs_ListRejectAndAnswer_AndRunStopsAtPending()
    {
        var run = await CliAsync("run", "core.ask", "route=ops");
        var id = run.StdOut.Split('\n').First(l => l.StartsWith("id: ", StringComparison.Ordinal))["id: ".Length..].Trim();

        var list = await CliAsync("inquiry", "list", "--json");
        var rejected = await CliAsync("inquiry", "respond", id, "--data", """{"continue": "yes"}""");
        var notJson = await CliAsync("inquiry", "respond", id, "--data", "yes");
        var answered = await CliAsync("inquiry", "respond", id, "--data", """{"continue": true}""");
        var again = await CliAsync("inquiry", "respond", id, "--data", """{"continue": false}""");
        var execution = await CliAsync("execution", "get", id, "--json");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("status: pending", run.StdOut);
        Assert.Contains($"storm inquiry respond {id}", run.StdOut);
        Assert.Contains(JsonNode.Parse(list.StdOut)!.AsArray(), i => i!["id"]!.GetValue<string>() == id && i["route"]!.GetValue<string>() == "ops");
        Assert.Equal(2, rejected.ExitCode);
        Assert.Contains("continue: expected boolean, got string", rejected.StdErr);
        Assert.Equal(2, notJson.ExitCode);
        Assert.Contains("--data is not JSON", notJson.StdErr);
        Assert.Equal(0, answered.ExitCode);
        Assert.Equal("succeeded", JsonNode.Parse(answered.StdOut)!["status"]!.GetValue<string>());
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("not pending", again.StdErr);
        Assert.True(JsonNode.Parse(execution.StdOut)!["result"]!["response"]!["continue"]!.GetValue<bool>());
    }

    [Fact]
    public async Task CanarySecret_IsMaskedInEveryCliOutput_AndNowhereInTheServersLogsOrStorage()
    {
        // Every way an operator looks at executions that handled a secret: from the datastore, as a secret
        // parameter echoed by a service, and as an inquiry's secret answer.
        var canary = "cnry" + Guid.NewGuid().ToString("N")[..8]; // short enough for the inquiry's maxLength
        var key = "cli_canary_" + Guid.NewGuid().ToString("N")[..6];
        using var echo = new BasicAuthEchoServer();
        var outputs = new List<(string Command, CliResult Result)>();
        async Task<CliResult> Cli(params string[] arguments)
        {
            var result = await CliAsync(arguments);
            outputs.Add((string.Join(' ', arguments), result));
            return result;
        }

        static string IdOf(CliResult run) => run.StdOut.Split('\n').First(l => l.StartsWith("id: ", StringComparison.Ordinal))["id: ".Length..].Trim();

        Assert.Equal(0, (await CliAsync("key", "set", key, canary, "--secret")).ExitCode);
        var fromDatastore = await Cli("run", "core.local", $"cmd=echo 'token {{{{ st2kv.system.{key} }}}}'; echo 'token {{{{ st2kv.system.{key} }}}}' >&2");
        var called = await Cli("run", "core.http", $"url={echo.Url}", "username=ops", $"password={canary}");
        var calledId = IdOf(called);
        await Cli("execution", "get", calledId);
        await Cli("execution", "get", calledId, "--json");
        await Cli("execution", "tail", IdOf(fromDatastore));
        await Cli("execution", "list");
        await Cli("execution", "list", "--json");
        var reRun = await Cli("execution", "re-run", calledId, "--json");
        await Cli("key", "get", key);
        await Cli("key", "list", "--json");
        var (_, asked) = await PostAsync("/api/v1/executions", new JsonObject
        {
            ["action"] = "core.ask",
            ["parameters"] = new JsonObject { ["schema"] = JsonNode.Parse("""{"type": "object", "properties": {"code": {"type": "string", "secret": true, "maxLength": 12}}}""") },
        }.ToJsonString());
        var inquiry = asked!["id"]!.GetValue<string>();
        await Eventually.ReturnsAsync(() => CliAsync("inquiry", "get", inquiry), r => r.StdOut.Contains("pending", StringComparison.Ordinal));
        var tooLong = await Cli("inquiry", "respond", inquiry, "--data", new JsonObject { ["code"] = canary + "-more" }.ToJsonString());
        var answered = await Cli("inquiry", "respond", inquiry, "--data", new JsonObject { ["code"] = canary }.ToJsonString());
        await Cli("inquiry", "get", inquiry);
        await Cli("execution", "get", inquiry, "--json");

        // The scenarios really handled the secret: each action saw the value and the CLI shows it masked.
        Assert.Equal(0, fromDatastore.ExitCode);
        Assert.Contains("token ********", fromDatastore.StdOut);
        Assert.Equal(0, called.ExitCode);
        Assert.Contains("you sent ops:********", called.StdOut);
        Assert.Equal(0, reRun.ExitCode);
        var reRan = await Eventually.ReturnsAsync(() => CliAsync("execution", "get", JsonNode.Parse(reRun.StdOut)!["id"]!.GetValue<string>(), "--json"),
            r => r.StdOut.Contains("\"succeeded\"", StringComparison.Ordinal));
        outputs.Add(("execution get (the re-run)", reRan));
        Assert.Equal("you sent ops:********", JsonNode.Parse(reRan.StdOut)!["result"]!["body"]!.GetValue<string>());
        Assert.Equal(2, tooLong.ExitCode);
        Assert.Contains("code: is longer than 12", tooLong.StdErr);
        Assert.Equal(0, answered.ExitCode);
        Assert.Equal("********", JsonNode.Parse(answered.StdOut)!["response"]!["code"]!.GetValue<string>());
        Assert.Equal(2, echo.Requests); // the run and its re-run

        var hits = outputs.Where(o => (o.Result.StdOut + o.Result.StdErr).Contains(canary, StringComparison.Ordinal)).Select(o => $"storm {o.Command}: {o.Result}").ToList();
        if (_storm.Output.Contains(canary, StringComparison.Ordinal))
        {
            hits.Add("storm serve's log");
        }

        // The audit's journal holds what is not stored yet; then storage, with everything stored once the server stops.
        if (AuditJournalFiles.ReadAll(_journal).Contains(canary, StringComparison.Ordinal))
        {
            hits.Add("the audit journal");
        }

        await _storm.StopAsync();
        hits.AddRange((await StorageScan.FindAsync(azurite.ConnectionString, canary)).Hits);
        Assert.Empty(hits);
    }

    [Fact]
    public async Task WebhookSend_PostsTheBody()
    {
        var sent = await CliAsync("webhook", "send", "hello", "--data", """{"name":"cli"}""");

        Assert.Equal(0, sent.ExitCode);
        var traceTag = JsonNode.Parse(sent.StdOut)!["trace_tag"]!.GetValue<string>();
        var trace = await Eventually.ReturnsAsync(() => Audit().GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));
        Assert.Equal("Hello cli", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
    }
}

/// <summary>Ways of starting the local stack other than the default.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class ServeModesTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task StorageQueueTransport_RunsTheHelloExample()
    {
        await using var storm = await StormProcess.ServeAsync("--storage", azurite.ConnectionString, "--transport", "storage-queue");
        using var http = StormProcess.NewHttpClient();

        var response = await http.PostAsync(storm.Url + "/api/v1/webhooks/hello", new StringContent("""{"name":"queue"}""", Encoding.UTF8, "application/json"));
        var traceTag = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["trace_tag"]!.GetValue<string>();
        var audit = new TableAuditStore(Options.Create(new AzureStorageOptions { ConnectionString = azurite.ConnectionString }), TimeProvider.System);
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));

        Assert.Equal("Hello queue", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheAudit_IsWrittenBehindByDefault_ThroughWhenAskedOrOnStorageQueues()
    {
        var journal = Path.Combine(Path.GetTempPath(), "storm-e2e-journal-" + Guid.NewGuid().ToString("N")[..8]);
        var environment = new Dictionary<string, string> { ["Storage__Prefix"] = azurite.NewStorageOptions().Prefix };
        string[] serve = ["--storage", azurite.ConnectionString, "--audit-journal", journal];
        try
        {
            await using (var byDefault = await StormProcess.ServeAsync(environment, serve))
            {
                // One folder per prefix and account: a journal left unstored is never replayed into another account.
                var folder = Path.Combine(journal, ServerlessStorm.Cli.Serve.StormServer.JournalFolderName(azurite.ConnectionString, environment["Storage__Prefix"]));
                await Eventually.TrueAsync(() => byDefault.Output.Contains("audit: written behind, journal " + folder, StringComparison.Ordinal),
                    TimeSpan.FromSeconds(10), "the start line naming the journal");
                Assert.True(File.Exists(Path.Combine(folder, "journal.lock")));
                Assert.NotEqual(folder, Path.Combine(journal, ServerlessStorm.Cli.Serve.StormServer.JournalFolderName(
                    azurite.ConnectionString.Replace(azurite.Endpoints.TablePort.ToString(System.Globalization.CultureInfo.InvariantCulture), "1", StringComparison.Ordinal), environment["Storage__Prefix"])));
            }

            Directory.Delete(journal, recursive: true);
            await using (var through = await StormProcess.ServeAsync(environment, [.. serve, "--audit-write-through"]))
            {
                await Eventually.TrueAsync(() => through.Output.Contains("audit: written through", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the start line");
            }

            // Written through, there is no journal; the in-process bus still keeps its messages on disk.
            var local = Path.Combine(journal, ServerlessStorm.Cli.Serve.StormServer.JournalFolderName(azurite.ConnectionString, environment["Storage__Prefix"]));
            Assert.Equal([ServerlessStorm.Engine.Messaging.SqliteMessageBus.FileName], Directory.GetFiles(local).Select(Path.GetFileName).Where(f => !f!.StartsWith(ServerlessStorm.Engine.Messaging.SqliteMessageBus.FileName + "-", StringComparison.Ordinal)));
            Directory.Delete(journal, recursive: true);

            await using (var queues = await StormProcess.ServeAsync(environment, [.. serve, "--transport", "storage-queue"]))
            {
                await Eventually.TrueAsync(() => queues.Output.Contains("audit: written through", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the start line");
            }

            Assert.False(Directory.Exists(journal));
            var refused = await StormProcess.RunAsync(new Dictionary<string, string>(environment) { ["Storage__AuditWriteBehind"] = "true" },
                ["serve", "--port", AzuriteFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), .. serve, "--transport", "storage-queue"]);
            Assert.True(refused.ExitCode != 0 && refused.StdErr.Contains("Storage:Audit 'write-behind' needs Bus:Transport 'in-process' (got 'storage-queue')", StringComparison.Ordinal), refused.ToString());

            // A journal folder that cannot be made is named, with the ways out, instead of a crash.
            var unwritable = await StormProcess.RunAsync(environment,
                ["serve", "--port", AzuriteFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), "--storage", azurite.ConnectionString, "--audit-journal", "/proc/storm-journal"]);
            Assert.True(unwritable.ExitCode != 0 && unwritable.StdErr.Contains("error: refusing to start: the audit journal's folder '/proc/storm-journal/", StringComparison.Ordinal)
                && unwritable.StdErr.Contains("(choose another folder with --audit-journal DIR, or --audit-write-through)", StringComparison.Ordinal), unwritable.ToString());
        }
        finally
        {
            if (Directory.Exists(journal))
            {
                Directory.Delete(journal, recursive: true);
            }
        }
    }

    /// <summary>
    /// Ctrl+C in the terminal that runs storm serve signals its whole process group. The Azurite it started is in a
    /// session of its own, so it is still there to store the journal; storm serve then stops it and exits.
    /// </summary>
    [Fact]
    public async Task CtrlC_ToTheWholeProcessGroup_StoresTheJournal_StopsAzurite_AndExitsWithinSeconds()
    {
        var endpoints = new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort());
        var data = Path.Combine(Path.GetTempPath(), "storm-e2e-ctrlc-" + Guid.NewGuid().ToString("N")[..8]);
        var environment = new Dictionary<string, string> { ["Storage__WriteBehind__FlushDelay"] = "01:00:00" }; // stored only when it stops
        string[] serve = ["--storage", endpoints.ConnectionString, "--azurite-data", data, "--audit-journal", Path.Combine(data, "journal")];
        var storm = await StormProcess.ServeInOwnProcessGroupAsync(environment, serve);
        using var http = StormProcess.NewHttpClient();
        var accepted = JsonNode.Parse(await (await http.PostAsync(storm.Url + "/api/v1/webhooks/hello", new StringContent("""{"name": "ctrl-c"}""", Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync())!;
        var trace = accepted["trace_tag"]!.GetValue<string>();
        await Eventually.TrueAsync(() => storm.Output.Contains("finished: succeeded", StringComparison.Ordinal), TimeSpan.FromSeconds(30), "the hello execution to finish");

        var exited = await storm.InterruptGroupAsync(TimeSpan.FromSeconds(10));

        Assert.True(exited, "storm serve was still running 10 s after Ctrl+C:\n" + storm.Output);
        Assert.Equal(0, storm.ExitCode);
        Assert.DoesNotContain("   at ", storm.Output); // no stack traces
        await Eventually.ReturnsAsync(() => AzuriteLauncher.IsListeningAsync(endpoints.Host, endpoints.TablePort), listening => !listening,
            TimeSpan.FromSeconds(10), "Azurite to stop with storm");
        await storm.DisposeAsync();

        // The next start finds everything stored: the journal was stored before Azurite stopped.
        await using (var next = await StormProcess.ServeAsync(serve))
        {
            var stored = new TableAuditStore(Options.Create(new AzureStorageOptions { ConnectionString = endpoints.ConnectionString }), TimeProvider.System);
            var recorded = await stored.GetTraceAsync(trace, CancellationToken.None);
            Assert.Equal(ExecutionStatus.Succeeded, Assert.Single(recorded.Executions).Status);
            Assert.DoesNotContain("Taking up", next.Output);
        }

        Directory.Delete(data, recursive: true);
    }

    [Fact]
    public async Task EmulatorNotRunning_ServeStartsAzurite_AndStopsItOnExit()
    {
        var endpoints = new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort());
        var data = Path.Combine(Path.GetTempPath(), "storm-e2e-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        Assert.False(await AzuriteLauncher.IsListeningAsync(endpoints.Host, endpoints.TablePort));

        var storm = await StormProcess.ServeAsync("--storage", endpoints.ConnectionString, "--azurite-data", data, "--audit-journal", Path.Combine(data, "journal"));
        Assert.True(await AzuriteLauncher.IsListeningAsync(endpoints.Host, endpoints.TablePort));
        Assert.True(Directory.Exists(data));
        await storm.StopAsync();

        Assert.Equal(0, storm.ExitCode);
        await Eventually.ReturnsAsync(() => AzuriteLauncher.IsListeningAsync(endpoints.Host, endpoints.TablePort), listening => !listening,
            TimeSpan.FromSeconds(10), "Azurite to stop with storm");
        await storm.DisposeAsync();
        Directory.Delete(data, recursive: true);
    }
}
