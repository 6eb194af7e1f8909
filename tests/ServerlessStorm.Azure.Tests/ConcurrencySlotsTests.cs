using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Executions;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>Concurrency slots in Table Storage: the limit holds across hosts that share only the storage account.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class ConcurrencySlotsTests(AzuriteFixture azurite)
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task ManyHoldersRacing_GetExactlyThresholdSlots()
    {
        var storage = Options.Create(azurite.NewStorageOptions());
        var hosts = Enumerable.Range(0, 4).Select(_ => new TableConcurrencySlots(storage, TimeProvider.System)).ToList();
        var lease = DateTimeOffset.UtcNow.AddMinutes(5);

        var results = await Task.WhenAll(Enumerable.Range(0, 24).Select(i => hosts[i % 4].TryAcquireAsync("p.limit", 3, $"exec{i}", lease, CancellationToken.None)));

        Assert.Equal(3, results.Count(r => r));
        var holder = $"exec{Array.IndexOf(results, true)}";
        Assert.True(await hosts[0].TryAcquireAsync("p.limit", 3, holder, lease, CancellationToken.None), "a holder asking again keeps its slot");
        Assert.False(await hosts[1].TryAcquireAsync("p.limit", 3, "late", lease, CancellationToken.None));
        await hosts[2].ReleaseAsync("p.limit", holder, CancellationToken.None);
        Assert.True(await hosts[3].TryAcquireAsync("p.limit", 3, "late", lease, CancellationToken.None));
        Assert.True(await hosts[0].TryAcquireAsync("other.scope", 1, "x", lease, CancellationToken.None), "scopes count separately");
    }

    [Fact]
    public async Task ExpiredLease_IsTakenOver_AndItsHolderCannotReleaseTheNewOne()
    {
        var storage = Options.Create(azurite.NewStorageOptions());
        var clock = new ManualTimeProvider(T0);
        var slots = new TableConcurrencySlots(storage, clock);

        Assert.True(await slots.TryAcquireAsync("p.limit", 1, "dead-worker", T0.AddSeconds(30), CancellationToken.None));
        Assert.False(await slots.TryAcquireAsync("p.limit", 1, "next", T0.AddSeconds(90), CancellationToken.None));
        clock.Advance(TimeSpan.FromSeconds(31));
        Assert.True(await slots.TryAcquireAsync("p.limit", 1, "next", T0.AddSeconds(90), CancellationToken.None));
        await slots.ReleaseAsync("p.limit", "dead-worker", CancellationToken.None);
        Assert.False(await slots.TryAcquireAsync("p.limit", 1, "third", T0.AddSeconds(90), CancellationToken.None));
    }

    [Fact]
    public async Task TwoHostsWithTheirOwnQueues_ShareOnePolicyLimit()
    {
        using var packs = new TempPacks().WithPack("limited");
        packs.Write("limited/actions/slow.yaml", "name: slow\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: 'sleep 0.4'}\n");
        packs.Write("limited/policies/limit.yaml", "name: limit\nresource_ref: limited.slow\npolicy_type: action.concurrency\nparameters: {threshold: 2, action: delay}\n");
        // One audit and one slots table; each host gets its own queues, so each runs exactly what it was given.
        var shared = Options.Create(azurite.NewStorageOptions());
        var audit = new TableAuditStore(shared, TimeProvider.System);
        async Task<StormTestHost> StartHostAsync()
        {
            var bus = new StorageQueueMessageBus(Options.Create(azurite.NewStorageOptions()), Options.Create(new BusOptions()),
                Options.Create(new StorageQueueOptions { MaxPollingInterval = TimeSpan.FromMilliseconds(50) }), NullLogger<StorageQueueMessageBus>.Instance);
            return await StormTestHost.StartAsync(audit, bus, packs.Root, services =>
            {
                services.AddSingleton<IConcurrencySlots>(new TableConcurrencySlots(shared, TimeProvider.System));
                services.Configure<ExecutorOptions>(o => o.ConcurrencyRecheckInterval = TimeSpan.FromMilliseconds(100));
            });
        }

        await using var first = await StartHostAsync();
        await using var second = await StartHostAsync();
        var requested = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            (i % 2 == 0 ? first : second).Services.GetRequiredService<ExecutionService>().RunAsync("limited.slow", [], null, TestCallers.Admin.User, CancellationToken.None)));
        var finished = await Task.WhenAll(requested.Select(e => first.WaitForExecutionAsync(e.Id, TimeSpan.FromSeconds(60))));

        Assert.All(finished, e => Assert.Equal(ExecutionStatus.Succeeded, e.Status));
        Assert.Equal(2, ExecutionOverlap.MaxRunningAtOnce(finished));
        Assert.Contains(first.Logs, l => l.Contains("finished: succeeded", StringComparison.Ordinal));
        Assert.Contains(second.Logs, l => l.Contains("finished: succeeded", StringComparison.Ordinal));
    }
}
