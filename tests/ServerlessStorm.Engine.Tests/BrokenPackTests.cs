using System.Text;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace ServerlessStorm.Engine.Tests;

/// <summary>One pack's defect does not stop the others: the engine starts with the good packs and runs them.</summary>
public sealed class BrokenPackTests
{
    private static TempPacks GoodBesideBroken()
    {
        var packs = new TempPacks().WithPack("good").WithPack("broken");
        packs.Write("good/actions/hi.yaml", "name: hi\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: echo hi from good}\n");
        packs.Write("good/rules/hi.yaml", "name: hi\npack: good\ntrigger: {type: core.st2.webhook, parameters: {url: hi}}\naction: {ref: good.hi}\n");
        packs.Write("broken/rules/bad.yaml", "name: bad\npack: broken\ntrigger: {type: core.st2.webhook, parameters: {url: bad}}\naction: {ref: broken.missing}\n");
        return packs.WithRepositoryCore();
    }

    [Fact]
    public async Task AGoodPackBesideABrokenOne_Runs_AndTheReportSaysWhyTheOtherWasLeftOut()
    {
        using var packs = GoodBesideBroken();
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var response = await host.Api.PostWebhookAsync("hi", [], Encoding.UTF8.GetBytes("{}"), TestCallers.Admin, CancellationToken.None);

        Assert.Equal(202, response.StatusCode);
        var traceTag = response.Body!["trace_tag"]!.GetValue<string>();
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));
        Assert.Equal(ExecutionStatus.Succeeded, trace.Executions[0].Status);
        Assert.Equal("hi from good", trace.Executions[0].Result!["stdout"]!.GetValue<string>());

        var report = host.Services.GetRequiredService<PackCatalog>().LoadReport;
        var broken = Assert.Single(report, p => p.Name == "broken");
        Assert.False(broken.Loaded);
        Assert.Contains("action 'broken.missing' does not exist", Assert.Single(broken.Problems).Message, StringComparison.Ordinal);
        Assert.True(Assert.Single(report, p => p.Name == "good").Loaded);
    }

    [Fact]
    public void Strict_RefusesToStart_ListingEveryProblem()
    {
        using var packs = GoodBesideBroken();
        var options = new StormOptions { PacksPath = packs.Root, StrictPacks = true };

        var refused = Assert.Throws<PackLoadException>(() => StormEngineServices.LoadCatalog(options, Actions.RunnerRegistry.Default,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));

        Assert.Contains("action 'broken.missing' does not exist", Assert.Single(refused.Problems).Message, StringComparison.Ordinal);
    }
}
