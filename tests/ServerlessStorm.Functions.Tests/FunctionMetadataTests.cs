using System.Text.Json.Nodes;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Functions.Tests;

/// <summary>
/// The Functions host cannot run here, so the function metadata the Worker SDK generates at build time — what the
/// host would index — is read and checked: every function's trigger, route, methods, schedule and queue.
/// </summary>
public class FunctionMetadataTests
{
    private static readonly Lazy<JsonArray> Metadata = new(Load);

    private static JsonArray Load()
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var candidates = new[]
        {
            Path.Combine(AppContext.BaseDirectory, "functions.metadata"),
            Path.Combine(RepositoryPaths.Root, "functions", "ServerlessStorm.Functions", "bin", configuration, "net10.0", "functions.metadata"),
        };
        var path = candidates.FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"functions.metadata was not generated; looked in: {string.Join(", ", candidates)}");
        return JsonNode.Parse(File.ReadAllText(path))!.AsArray();
    }

    private static JsonObject Trigger(string function)
    {
        var entry = Metadata.Value.SingleOrDefault(f => f!["name"]!.GetValue<string>() == function)
            ?? throw new Xunit.Sdk.XunitException($"function '{function}' is not in the metadata");
        return entry["bindings"]!.AsArray().Single(b => b!["type"]!.GetValue<string>().EndsWith("Trigger", StringComparison.Ordinal))!.AsObject();
    }

    [Theory]
    [InlineData("Api", "api/{*path}")]
    [InlineData("Auth", "auth/{*path}")]
    public void HttpFunctions_AreAnonymousToTheHost_TheGatewayAuthenticates(string function, string route)
    {
        var trigger = Trigger(function);

        Assert.Equal("httpTrigger", trigger["type"]!.GetValue<string>());
        Assert.Equal(route, trigger["route"]!.GetValue<string>());
        Assert.Equal("Anonymous", trigger["authLevel"]!.GetValue<string>());
    }

    [Fact]
    public void EveryApiRoute_IsReachableThroughAnHttpFunction_WithItsMethod()
    {
        var routes = ServerlessStorm.Engine.Api.ApiRoutes.For(null!);

        Assert.NotEmpty(routes);
        Assert.All(routes, route =>
        {
            var function = route.Template.StartsWith("/api/", StringComparison.Ordinal) ? "Api" : route.Template.StartsWith("/auth/", StringComparison.Ordinal) ? "Auth" : null;
            Assert.True(function is not null, $"{route.Method} {route.Template} is under neither /api nor /auth");
            Assert.Contains(route.Method.ToLowerInvariant(), Trigger(function!)["methods"]!.AsArray().Select(m => m!.GetValue<string>()));
        });
    }

    [Fact]
    public void HostJson_LeavesThePathsAsStackStormHasThem()
    {
        var host = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "host.json")))!;

        Assert.Equal("", host["extensions"]!["http"]!["routePrefix"]!.GetValue<string>());
        Assert.Equal("none", host["extensions"]!["queues"]!["messageEncoding"]!.GetValue<string>());
    }

    [Fact]
    public void TheOnlyTimerTriggersAreTheHourlyRearm_TheInquirySweep_AndTheDailyRetention()
    {
        var timers = Metadata.Value.Where(f => f!["bindings"]!.AsArray().Any(b => b!["type"]!.GetValue<string>() == "timerTrigger"))
            .ToDictionary(f => f!["name"]!.GetValue<string>(), f => Trigger(f!["name"]!.GetValue<string>())["schedule"]!.GetValue<string>());

        Assert.Equal(new Dictionary<string, string> { ["TimerRearm"] = "0 0 * * * *", ["InquiryTimeouts"] = "0 */10 * * * *", ["AuditRetention"] = "0 17 3 * * *" }, timers);
    }

    [Theory]
    [InlineData("RulesEngine", "%STORM_TRIGGER_INSTANCES_QUEUE%")]
    [InlineData("ActionRunner", "%STORM_ACTION_EXECUTIONS_QUEUE%")]
    [InlineData("TimerTicks", "%STORM_TIMERS_QUEUE%")]
    public void PipelineFunctions_ListenOnTheQueuesTheirAppSettingsName(string function, string queue)
    {
        var trigger = Trigger(function);

        Assert.Equal("queueTrigger", trigger["type"]!.GetValue<string>());
        Assert.Equal(queue, trigger["queueName"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("StormWorkflow", "orchestrationTrigger")]
    [InlineData("StormWorkflowTask", "activityTrigger")]
    [InlineData("StormWorkflowFinish", "activityTrigger")]
    [InlineData("StormWorkflowDatastore", "activityTrigger")]
    public void Workflows_RunAsDurableFunctions_UnderTheNamesTheLocalTaskHubUses(string function, string trigger) =>
        Assert.Equal(trigger, Trigger(function)["type"]!.GetValue<string>());

    [Theory]
    [InlineData("ActionRunner")]
    [InlineData("Api")]
    [InlineData("InquiryTimeouts")]
    public void FunctionsThatStartOrSteerWorkflows_BindTheDurableClient(string function)
    {
        var entry = Metadata.Value.Single(f => f!["name"]!.GetValue<string>() == function)!;
        Assert.Contains(entry["bindings"]!.AsArray(), b => b!["type"]!.GetValue<string>() == "durableClient");
    }

    [Fact]
    public void EveryFunction_IsOneTheTestsKnow()
    {
        string[] known = ["Api", "Auth", "AuditRetention", "TimerRearm", "TimerTicks", "InquiryTimeouts", "RulesEngine", "ActionRunner", "StormWorkflow", "StormWorkflowTask", "StormWorkflowFinish", "StormWorkflowDatastore"];

        Assert.Equal(known.Order(), Metadata.Value.Select(f => f!["name"]!.GetValue<string>()).Order());
    }
}
