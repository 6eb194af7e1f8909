using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Durable.Tests;

/// <summary>Workflows as actions, run by the orchestrator on DurableTask.Core's Azure Storage backend over Azurite.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class WorkflowRunTests(AzuriteFixture azurite)
{
    private Task<(StormTestHost Host, WorkflowTaskHub Hub)> StartAsync(TempPacks packs) => StartAsync(packs.Root);

    private async Task<(StormTestHost Host, WorkflowTaskHub Hub)> StartAsync(string packsRoot)
    {
        var storage = azurite.NewStorageOptions();
        var audit = new TableAuditStore(Options.Create(storage), TimeProvider.System);
        var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packsRoot, services =>
        {
            services.AddSingleton(Options.Create(storage));
            services.AddStormWorkflows(new ConfigurationBuilder().Build());
        });
        var hub = host.Services.GetRequiredService<WorkflowTaskHub>();
        await hub.StartAsync(CancellationToken.None); // the packs have workflows, so this starts the task hub
        return (host, hub);
    }

    [Fact]
    public async Task Workflow_RunsEachTaskAsAChildExecution_AndEndsWithItsOutput()
    {
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/greet_all.yaml", """
            name: greet_all
            runner_type: orquesta
            entry_point: workflows/greet_all.yaml
            parameters:
              names: {type: array, required: true}
            """);
        packs.Write("wf/actions/workflows/greet_all.yaml", """
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
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.greet_all",
            new JsonObject { ["names"] = new JsonArray("ann", "bob", "cy") }, null, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        var trace = await host.Audit.GetTraceAsync(workflow.TraceTag, CancellationToken.None);

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        Assert.Equal("3 greeted", workflow.Result!["output"]!["summary"]!.GetValue<string>());
        Assert.Equal("Hello ann", workflow.Result["output"]!["first"]!.GetValue<string>());
        var children = trace.Executions.Where(e => e.ParentId == workflow.Id).ToList();
        Assert.Equal(4, children.Count);
        Assert.Equal(["count", "greet", "greet", "greet"], children.Select(c => c.WorkflowTask).Order());
        Assert.All(children, c => Assert.Equal(ExecutionStatus.Succeeded, c.Status));
    }

    [Fact]
    public async Task Workflow_WhoseTaskFailsUnhandled_FailsNamingTheTask()
    {
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/breaks.yaml", "name: breaks\nrunner_type: orquesta\nentry_point: workflows/breaks.yaml\n");
        packs.Write("wf/actions/workflows/breaks.yaml", """
            version: 1.0
            tasks:
              boom:
                action: core.local
                input: {cmd: "echo failing; exit 3"}
            """);
        var (host, hub) = await StartAsync(packs);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.breaks", [], null, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.Equal(ExecutionStatus.Failed, workflow.Status);
        Assert.StartsWith("task boom failed", workflow.Error, StringComparison.Ordinal);
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
            new JsonObject { ["version"] = "2.0", ["app_dir"] = appDir }, null, CancellationToken.None)).Id, TimeSpan.FromSeconds(90));
        var bad = await host.WaitForExecutionAsync((await service.RunAsync("examples.deploy",
            new JsonObject { ["version"] = "2.1-bad", ["app_dir"] = appDir, ["retries"] = 1 }, null, CancellationToken.None)).Id, TimeSpan.FromSeconds(90));
        var badTasks = (await host.Audit.GetTraceAsync(bad.TraceTag, CancellationToken.None)).Executions.Where(e => e.ParentId == bad.Id).ToList();

        Assert.True(good.Status == ExecutionStatus.Succeeded, good.Error);
        Assert.Equal("""{"status":"deployed","version":"2.0","previous":"none"}""", good.Result!["output"]!.ToJsonString());
        Assert.Equal(ExecutionStatus.Failed, bad.Status);
        Assert.Equal(2, badTasks.Count(t => t.WorkflowTask == "health_check")); // the first check and one retry
        Assert.Equal("rolled back to 2.0", badTasks.Single(t => t.WorkflowTask == "rollback").Result!["stdout"]!.GetValue<string>());
        Assert.Equal("2.0", (await File.ReadAllTextAsync(Path.Combine(appDir, "VERSION"))).Trim());
        Directory.Delete(appDir, recursive: true);
    }
}
