using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.ActionSdk;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>runner_type dotnet: C# actions from a pack's assembly (the examples pack's, built with the solution).</summary>
public sealed class DotnetActionTests : IAsyncLifetime
{
    private static readonly string ExampleActions = Path.Combine(RepositoryPaths.Packs, "examples", "actions", "dotnet", "ExampleActions.dll");
    private readonly InMemoryAuditStore _audit = new();
    private StormTestHost _host = null!;

    public async Task InitializeAsync() => _host = await StormTestHost.StartAsync(_audit, new InMemoryMessageBus(), configure: services =>
        services.Configure<ExecutorOptions>(o => o.CancelPollInterval = TimeSpan.FromMilliseconds(50)));

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private Task<ExecutionRecord> RunAsync(string action, JsonObject parameters) =>
        _host.Services.GetRequiredService<ExecutionService>().RunAsync(action, parameters, null, TestCallers.Admin.User, CancellationToken.None);

    [Fact]
    public async Task DiskFree_Succeeds_WithItsResult_AndFailsBelowTheThreshold_KeepingTheResult()
    {
        var ok = await _host.WaitForExecutionAsync((await RunAsync("examples.disk_free", new JsonObject { ["path"] = "/", ["min_free_percent"] = 0 })).Id);
        var full = await _host.WaitForExecutionAsync((await RunAsync("examples.disk_free", new JsonObject { ["path"] = "/", ["min_free_percent"] = 101 })).Id);
        var missing = await _host.WaitForExecutionAsync((await RunAsync("examples.disk_free", new JsonObject { ["path"] = "/no/such/dir" })).Id);

        Assert.Equal(ExecutionStatus.Succeeded, ok.Status);
        Assert.True(ok.Result!["result"]!["ok"]!.GetValue<bool>());
        Assert.InRange(ok.Result["result"]!["free_percent"]!.GetValue<double>(), 0, 100);
        Assert.Equal(ExecutionStatus.Failed, full.Status);
        Assert.Contains("% free on / (threshold 101%)", full.Error, StringComparison.Ordinal);
        Assert.False(full.Result!["result"]!["ok"]!.GetValue<bool>());
        Assert.Equal("'/no/such/dir' is not a directory on this host", missing.Error);
    }

    [Fact]
    public async Task WaitForFile_SucceedsWhenTheFileAppears_TimesOut_AndIsCanceledOnRequest()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"storm-marker-{Guid.NewGuid():N}");
        var waiting = await RunAsync("examples.wait_for_file", new JsonObject { ["path"] = marker, ["poll_seconds"] = 0.05 });
        await Eventually.ReturnsAsync(() => _audit.GetExecutionAsync(waiting.Id, CancellationToken.None), e => e?.Status == ExecutionStatus.Running);
        await File.WriteAllTextAsync(marker, "done");
        var appeared = await _host.WaitForExecutionAsync(waiting.Id);

        var timedOut = await _host.WaitForExecutionAsync((await RunAsync("examples.wait_for_file", new JsonObject { ["path"] = marker + ".never", ["timeout"] = 1 })).Id);

        var canceled = await RunAsync("examples.wait_for_file", new JsonObject { ["path"] = marker + ".never", ["poll_seconds"] = 0.05 });
        await Eventually.ReturnsAsync(() => _audit.GetExecutionAsync(canceled.Id, CancellationToken.None), e => e?.Status == ExecutionStatus.Running);
        await _host.Services.GetRequiredService<ExecutionService>().CancelAsync(canceled.Id, CancellationToken.None);
        var stopped = await _host.WaitForExecutionAsync(canceled.Id);
        var output = await _host.Services.GetRequiredService<IExecutionOutputStore>().ReadAsync(canceled.Id, 0, CancellationToken.None);

        Assert.Equal(ExecutionStatus.Succeeded, appeared.Status);
        Assert.Equal(marker, appeared.Result!["result"]!["path"]!.GetValue<string>());
        Assert.Equal(ExecutionStatus.Timeout, timedOut.Status);
        Assert.Equal("the action did not finish within 1 s", timedOut.Error);
        Assert.Equal(ExecutionStatus.Canceled, stopped.Status);
        Assert.Contains(output, chunk => chunk.Text.Contains($"waiting for {marker}.never", StringComparison.Ordinal));
        File.Delete(marker);
    }

    [Fact]
    public void TheActionContract_IsTheHostsOwn_NotACopyFromThePack()
    {
        var type = PackAssemblies.ResolveAction(Path.Combine(RepositoryPaths.Packs, "examples"), "dotnet/ExampleActions.dll:ExampleActions.DiskFree");

        Assert.Contains(typeof(IStormAction), type.GetInterfaces());
        Assert.NotEqual(System.Runtime.Loader.AssemblyLoadContext.Default, System.Runtime.Loader.AssemblyLoadContext.GetLoadContext(type.Assembly));
        Assert.Same(typeof(IStormAction).Assembly, type.GetInterfaces().Single(i => i.Name == nameof(IStormAction)).Assembly);
    }

    [Fact]
    public void BadEntryPoints_AndAPackShippingAnEngineAssembly_AreLoadErrors()
    {
        using var packs = new TempPacks().WithPack("cs");
        Directory.CreateDirectory(Path.Combine(packs.Root, "cs", "actions", "lib"));
        File.Copy(ExampleActions, Path.Combine(packs.Root, "cs", "actions", "lib", "ExampleActions.dll"));
        Directory.CreateDirectory(Path.Combine(packs.Root, "cs", "actions", "bundled"));
        File.Copy(ExampleActions, Path.Combine(packs.Root, "cs", "actions", "bundled", "ExampleActions.dll"));
        File.Copy(typeof(ActionExecutor).Assembly.Location, Path.Combine(packs.Root, "cs", "actions", "bundled", "ServerlessStorm.Engine.dll"));
        void Action(string name, string entryPoint) =>
            packs.Write($"cs/actions/{name}.yaml", $"name: {name}\nrunner_type: dotnet\nentry_point: '{entryPoint}'\n");
        Action("ok", "lib/ExampleActions.dll:ExampleActions.DiskFree");
        Action("no_class", "lib/ExampleActions.dll");
        Action("missing", "lib/Nope.dll:Nope.Action");
        Action("unknown_class", "lib/ExampleActions.dll:ExampleActions.Nope");
        Action("outside", "../../core/x.dll:X.Y");
        Action("bundled", "bundled/ExampleActions.dll:ExampleActions.DiskFree");
        packs.Write("cs/actions/no_entry.yaml", "name: no_entry\nrunner_type: dotnet\n");

        var problems = new PackLoader(RunnerRegistry.Default).LoadFrom(packs.Root).Problems;
        string ProblemOf(string name) => Assert.Single(problems, p => p.File.EndsWith($"/{name}.yaml", StringComparison.Ordinal)).Message;

        Assert.DoesNotContain(problems, p => p.File.EndsWith("/ok.yaml", StringComparison.Ordinal));
        Assert.Equal("entry_point 'lib/ExampleActions.dll' is not 'path/To.dll:Namespace.ClassName'", ProblemOf("no_class"));
        Assert.StartsWith("assembly 'lib/Nope.dll' does not exist in", ProblemOf("missing"), StringComparison.Ordinal);
        Assert.Equal("'lib/ExampleActions.dll' has no class 'ExampleActions.Nope'", ProblemOf("unknown_class"));
        Assert.Equal("'../../core/x.dll' is outside the pack's actions folder", ProblemOf("outside"));
        Assert.Equal("the pack ships ServerlessStorm.Engine.dll, an assembly of the host's own; remove it (reference it with Private=\"false\")", ProblemOf("bundled"));
        Assert.StartsWith("a dotnet action needs entry_point", ProblemOf("no_entry"), StringComparison.Ordinal);
    }
}
