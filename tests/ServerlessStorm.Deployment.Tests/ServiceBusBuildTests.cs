using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Functions;

namespace ServerlessStorm.Deployment.Tests;

/// <summary>
/// The Service Bus trigger build (what azd deploys), compiled here against a compile-only reference of the
/// extension's attribute API: the function metadata the Worker SDK generated for it is what the host would index.
/// </summary>
public sealed class ServiceBusBuildTests
{
    private static readonly Lazy<JsonArray> Metadata = new(() =>
    {
        // Beside this assembly: the test project references the Service Bus build, whose output is copied here.
        var path = Path.Combine(AppContext.BaseDirectory, "functions.metadata");
        return JsonNode.Parse(File.ReadAllText(path))!.AsArray();
    });

    private static JsonObject Trigger(string function) =>
        Metadata.Value.Single(f => f!["name"]!.GetValue<string>() == function)!["bindings"]!.AsArray()
            .Single(b => b!["type"]!.GetValue<string>().EndsWith("Trigger", StringComparison.Ordinal))!.AsObject();

    [Theory]
    [InlineData("RulesEngineServiceBus", StormQueues.TriggerInstances)]
    [InlineData("ActionRunnerServiceBus", StormQueues.Executions)]
    [InlineData("TimerTicksServiceBus", StormQueues.Timers)]
    public void ThePipelineListensOnTheServiceBusQueues_ThroughTheIdentityConnection_SettlingMessagesItself(string function, string queue)
    {
        var trigger = Trigger(function);

        Assert.Equal("serviceBusTrigger", trigger["type"]!.GetValue<string>());
        Assert.Equal(queue, trigger["queueName"]!.GetValue<string>());
        Assert.Equal(ServiceBusFunctions.Connection, trigger["connection"]!.GetValue<string>());
        Assert.False(trigger["autoCompleteMessages"]!.GetValue<bool>());
    }

    [Fact]
    public void TheHost_RenewsAMessagesLockWhileItsHandlerRuns_AndLeavesSettlingToTheApp()
    {
        var host = JsonNode.Parse(File.ReadAllText(Path.Combine(ServerlessStorm.Testing.RepositoryPaths.Root, "host.json")))!;
        var serviceBus = host["extensions"]!["serviceBus"]!;
        // The host's own telemetry in OpenTelemetry too, so its spans and the app's make one trace.
        Assert.Equal("OpenTelemetry", host["telemetryMode"]!.GetValue<string>());

        Assert.False(serviceBus["autoCompleteMessages"]!.GetValue<bool>());
        // As long as Flex Consumption's default function timeout (30 minutes): the 30-second lock is renewed meanwhile.
        Assert.Equal(TimeSpan.FromMinutes(30), TimeSpan.Parse(serviceBus["maxAutoLockRenewalDuration"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void TheStorageQueueTriggers_AreNotInThisBuild()
    {
        Assert.DoesNotContain(Metadata.Value, f => f!["bindings"]!.AsArray().Any(b => b!["type"]!.GetValue<string>() == "queueTrigger"));
        Assert.Contains(Metadata.Value, f => f!["name"]!.GetValue<string>() == "Api");
    }
}

/// <summary>What ships beside the deployed app: every pack, with what its own projects build (C# actions), loadable.</summary>
public sealed class ShippedPacksTests
{
    [Fact]
    public void ThePacksBesideTheApp_LoadWithoutAProblem_CSharpActionsIncluded()
    {
        // The build output of the app (copied beside this assembly, as publishing puts it beside the app).
        var packs = Path.Combine(AppContext.BaseDirectory, "packs");
        var runners = new ServerlessStorm.Engine.Actions.RunnerRegistry(ServerlessStorm.Engine.Actions.RunnerRegistry.BuiltIn(new ServerlessStorm.Engine.Actions.Runners.EgressGuard()));

        var result = new ServerlessStorm.Engine.Packs.PackLoader(runners).LoadFrom(packs);

        Assert.True(result.IsValid, string.Join("\n", result.Problems));
        Assert.True(File.Exists(Path.Combine(packs, "examples", "actions", "dotnet", "ExampleActions.dll")));
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "rbac", "roles", "operator.yaml")));
    }
}
