using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>StackStorm's action.concurrency policies, on the in-memory ports, under parallel load.</summary>
public sealed class ConcurrencyPolicyTests
{
    private static TempPacks PacksWithPolicy(string policyType, string parameters)
    {
        var packs = new TempPacks().WithPack("limited");
        packs.Write("limited/actions/slow.yaml", """
            name: slow
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'sleep 0.3; echo "{{ host }}"'}
              host: {type: string, default: a}
            """);
        packs.Write("limited/policies/limit.yaml", $"name: limit\nresource_ref: limited.slow\npolicy_type: {policyType}\nparameters: {parameters}\n");
        return packs;
    }

    private static Task<StormTestHost> StartAsync(TempPacks packs, InMemoryAuditStore audit, IMessageBus? bus = null) =>
        StormTestHost.StartAsync(audit, bus ?? new InMemoryMessageBus(), packs.Root, services =>
            services.Configure<ExecutorOptions>(o => o.ConcurrencyRecheckInterval = TimeSpan.FromMilliseconds(50)));

    [Fact]
    public async Task HoldingForAWorkflow_GivesTheSlotBack_WhenTheWorkflowEndedMeanwhile_AndKeepsItWhileItRuns()
    {
        using var packs = PacksWithPolicy("action.concurrency", "{threshold: 1, action: cancel}");
        await using var host = await StartAsync(packs, new InMemoryAuditStore());
        var gate = host.Services.GetRequiredService<ConcurrencyGate>();
        var slots = host.Services.GetRequiredService<IConcurrencySlots>();
        var now = DateTimeOffset.UtcNow;
        ExecutionRecord Workflow(string id, string status) => new()
        {
            Id = id, ActionRef = "limited.slow", RunnerType = "orquesta", TraceTag = id, Parameters = [], Status = status, StartTimestamp = now,
        };

        // Its end was recorded (and its slot given back) just before the hold: the hold must not take the slot again.
        var ended = Workflow("wf-ended", ExecutionStatus.Running);
        await gate.HoldForWorkflowAsync(ended, now.AddHours(24), () => Task.FromResult<ExecutionRecord?>(Workflow("wf-ended", ExecutionStatus.Succeeded)), CancellationToken.None);
        Assert.True(await slots.TryAcquireAsync("limited.limit", 1, "another", now.AddMinutes(1), CancellationToken.None));
        await slots.ReleaseAsync("limited.limit", "another", CancellationToken.None);

        // Still running: it keeps the slot.
        var running = Workflow("wf-running", ExecutionStatus.Running);
        await gate.HoldForWorkflowAsync(running, now.AddHours(24), () => Task.FromResult<ExecutionRecord?>(running), CancellationToken.None);
        Assert.False(await slots.TryAcquireAsync("limited.limit", 1, "another", now.AddMinutes(1), CancellationToken.None));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // as on Service Bus with duplicate detection: a delayed request is a message of its own
    public async Task DelayPolicy_NeverRunsMoreThanTheThreshold_AndRunsEveryExecutionInTheEnd(bool duplicateDetection)
    {
        using var packs = PacksWithPolicy("action.concurrency", "{threshold: 2, action: delay}");
        var audit = new InMemoryAuditStore();
        var bus = duplicateDetection ? new DuplicateDetectingMessageBus(new InMemoryMessageBus()) : null;
        await using var host = await StartAsync(packs, audit, bus);
        var service = host.Services.GetRequiredService<ExecutionService>();

        var requested = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => service.RunAsync("limited.slow", [], null, TestCallers.Admin.User, CancellationToken.None)));
        var finished = await Task.WhenAll(requested.Select(e => host.WaitForExecutionAsync(e.Id, TimeSpan.FromSeconds(30))));

        Assert.All(finished, e => Assert.Equal(ExecutionStatus.Succeeded, e.Status));
        Assert.Equal(2, ExecutionOverlap.MaxRunningAtOnce(finished));
        Assert.Contains(finished, e => e.History.Any(h => h.Status == ExecutionStatus.Delayed));
        Assert.All(finished.Where(e => e.History.Any(h => h.Status == ExecutionStatus.Delayed)), e => Assert.Equal(
            [ExecutionStatus.Requested, ExecutionStatus.Delayed, ExecutionStatus.Scheduled, ExecutionStatus.Running, ExecutionStatus.Succeeded],
            e.History.Select(h => h.Status)));
        Assert.Equal(0, bus?.Dropped ?? 0);
    }

    [Fact]
    public async Task CancelPolicy_CancelsWhatIsBeyondTheThreshold_WithThePolicyNamed()
    {
        using var packs = PacksWithPolicy("action.concurrency", "{threshold: 1, action: cancel}");
        var audit = new InMemoryAuditStore();
        await using var host = await StartAsync(packs, audit);
        var service = host.Services.GetRequiredService<ExecutionService>();

        var requested = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => service.RunAsync("limited.slow", [], null, TestCallers.Admin.User, CancellationToken.None)));
        var finished = await Task.WhenAll(requested.Select(e => host.WaitForExecutionAsync(e.Id, TimeSpan.FromSeconds(30))));

        Assert.Equal(1, ExecutionOverlap.MaxRunningAtOnce(finished));
        Assert.Contains(finished, e => e.Status == ExecutionStatus.Succeeded);
        var canceled = finished.Where(e => e.Status == ExecutionStatus.Canceled).ToList();
        Assert.NotEmpty(canceled);
        Assert.All(canceled, e => Assert.Contains("canceled by policy limited.limit: 1 execution(s) of limited.slow were already running", e.Error, StringComparison.Ordinal));
        Assert.All(canceled, e => Assert.DoesNotContain(e.History, h => h.Status == ExecutionStatus.Running));

        // The slot was given back: a later execution runs.
        var later = await service.RunAsync("limited.slow", [], null, TestCallers.Admin.User, CancellationToken.None);
        Assert.Equal(ExecutionStatus.Succeeded, (await host.WaitForExecutionAsync(later.Id)).Status);
    }

    [Fact]
    public async Task AttributePolicy_CountsEachValueSeparately()
    {
        using var packs = PacksWithPolicy("action.concurrency.attr", "{threshold: 1, action: delay, attributes: [host]}");
        var audit = new InMemoryAuditStore();
        await using var host = await StartAsync(packs, audit);
        var service = host.Services.GetRequiredService<ExecutionService>();

        var requested = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => service.RunAsync("limited.slow", new JsonObject { ["host"] = i % 2 == 0 ? "a" : "b" }, null, TestCallers.Admin.User, CancellationToken.None)));
        var finished = await Task.WhenAll(requested.Select(e => host.WaitForExecutionAsync(e.Id, TimeSpan.FromSeconds(30))));

        Assert.All(finished, e => Assert.Equal(ExecutionStatus.Succeeded, e.Status));
        Assert.Equal(1, ExecutionOverlap.MaxRunningAtOnce(finished.Where(e => e.Parameters["host"]!.GetValue<string>() == "a")));
        Assert.Equal(1, ExecutionOverlap.MaxRunningAtOnce(finished.Where(e => e.Parameters["host"]!.GetValue<string>() == "b")));
        Assert.Equal(2, ExecutionOverlap.MaxRunningAtOnce(finished));
    }
}
