using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Sensors;
using ServerlessStorm.Engine.Sensors;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class TableSensorStoreContractTests(AzuriteFixture azurite) : SensorStoreContractTests
{
    protected override Task<ISensorStore> CreateStoreAsync() => Task.FromResult<ISensorStore>(new TableSensorStore(Options.Create(azurite.NewStorageOptions())));
}

/// <summary>Two schedulers (two host instances) on one Table Storage account: one polls a sensor, the other leaves it.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class TableSensorSchedulingTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task TwoSchedulersSharingTheSensorsTable_PollASensorOnce_AndANewSchedulerGoesOnFromTheKeptState()
    {
        using var packs = new TempPacks().WithPack("watch");
        packs.Write("watch/sensors/slow.yaml", "class_name: Slow\nentry_point: slow.test\npoll_interval: 1\n");
        packs.Write("watch/sensors/slow.test", "");
        var catalog = new Engine.Packs.PackLoader(Engine.Actions.RunnerRegistry.Default).LoadFrom(packs.Root).Catalog;
        var options = Options.Create(azurite.NewStorageOptions());
        var runner = new CountingRunner();
        SensorScheduler Scheduler() => new(catalog, [runner], new TableSensorStore(options),
            new Engine.Triggers.TriggerDispatcher(new Engine.Audit.InMemoryAuditStore(), new Engine.Messaging.InMemoryMessageBus()),
            new Engine.Datastore.KeyValueService(new Engine.Datastore.InMemoryKeyValueStore(), Options.Create(new Engine.Datastore.DatastoreOptions()), TimeProvider.System),
            Options.Create(new SensorOptions()), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<SensorScheduler>.Instance);

        var polling = Scheduler().StartDue(CancellationToken.None);
        await Eventually.TrueAsync(() => runner.Started == 1, what: "the first scheduler's poll");
        await Scheduler().RunDueAsync(CancellationToken.None);
        var startedWhileHeld = runner.Started;
        runner.Release.SetResult();
        await Task.WhenAll(polling);
        // A scheduler started afresh (a restarted host) polls when the interval has passed, from the kept state.
        var restarted = Scheduler();
        var store = new TableSensorStore(options);
        var after = await Eventually.ReturnsAsync(async () =>
        {
            await restarted.RunDueAsync(CancellationToken.None);
            return await store.GetAsync("watch.Slow", CancellationToken.None);
        }, r => r?.Polls == 2, what: "the restarted scheduler's poll");

        Assert.Equal(1, startedWhileHeld);
        Assert.Equal(2, after!.State["polls"]!.GetValue<int>());
        Assert.Null(after.Holder);
    }

    private sealed class CountingRunner : ISensorRunner
    {
        public int Started;

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Runs(SensorDefinition sensor) => sensor.EntryPoint?.EndsWith(".test", StringComparison.Ordinal) == true;

        public async Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Started);
            await Release.Task.WaitAsync(cancellationToken);
            var state = (System.Text.Json.Nodes.JsonObject)run.State.DeepClone();
            state["polls"] = (state["polls"]?.GetValue<int>() ?? 0) + 1;
            return new SensorPollOutcome(state);
        }

        public Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken) => Task.FromResult<string?>(null);
    }
}
