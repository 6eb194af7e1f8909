using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Sensors;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

public sealed class InMemorySensorStoreContractTests : SensorStoreContractTests
{
    protected override Task<ISensorStore> CreateStoreAsync() => Task.FromResult<ISensorStore>(new InMemorySensorStore());
}

/// <summary>
/// Sensors: a C# polling sensor from a pack's assembly (the examples pack's NewFilesSensor) polled by the scheduler,
/// its dispatches checked and fired through the rules, its state kept between polls, its failures recorded.
/// </summary>
public sealed class SensorTests : IDisposable
{
    private static readonly string ExampleActions = Path.Combine(RepositoryPaths.Packs, "examples", "actions", "dotnet", "ExampleActions.dll");
    private readonly string _inbox = Path.Combine(Path.GetTempPath(), "storm-inbox-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly TempPacks _packs = new TempPacks().WithPack("watch");

    public void Dispose()
    {
        _packs.Dispose();
        if (Directory.Exists(_inbox))
        {
            Directory.Delete(_inbox, recursive: true);
        }
    }

    // The watch pack: the example C# sensor (its assembly copied into the pack), a rule on a directory, an action.
    private void WatchPack(string sizeType = "integer")
    {
        Directory.CreateDirectory(Path.Combine(_packs.Root, "watch", "sensors", "lib"));
        File.Copy(ExampleActions, Path.Combine(_packs.Root, "watch", "sensors", "lib", "ExampleActions.dll"));
        _packs.Write("watch/sensors/new_files.yaml", $$$"""
            class_name: NewFilesSensor
            entry_point: lib/ExampleActions.dll:ExampleActions.NewFilesSensor
            poll_interval: 1
            trigger_types:
              - name: new_file
                parameters_schema:
                  type: object
                  properties: {directory: {type: string}}
                payload_schema:
                  type: object
                  properties:
                    directory: {type: string}
                    file: {type: string}
                    size: {type: {{{sizeType}}}}
                  required: [directory, file, size]
            """);
        _packs.Write("watch/actions/got.yaml", "name: got\nrunner_type: local-shell-cmd\nparameters:\n  file: {type: string}\n  cmd: {default: 'echo got {{ file }}'}\n");
        _packs.Write("watch/rules/on_file.yaml", $$$"""
            name: on_file
            pack: watch
            trigger: {type: watch.new_file, parameters: {directory: "{{{_inbox}}}"}}
            action: {ref: watch.got, parameters: {file: "{{ trigger.file }}"}}
            """);
    }

    /// <summary>
    /// A long-running sensor (watch.Forever, its code in forever.test) supervised by a storm serve-like scheduler on
    /// <paramref name="store"/>, short leases so renewals come often; returned once its run has started.
    /// </summary>
    private async Task<Supervised> SupervisedAsync(ISensorStore store)
    {
        var runner = new RunsUntilStopped();
        var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var serve = NewScheduler(host, runner, store, longRunning: true, lease: TimeSpan.FromMilliseconds(150));
        await serve.RunDueAsync(CancellationToken.None);
        var stop = new CancellationTokenSource();
        var supervised = new Supervised(host, runner, serve, stop, serve.SuperviseLongRunningAsync(TimeSpan.FromMilliseconds(20), stop.Token));
        await Eventually.TrueAsync(() => runner.Running == 1, what: "the sensor's run");
        return supervised;
    }

    private sealed record Supervised(StormTestHost Host, RunsUntilStopped Runner, SensorScheduler Scheduler, CancellationTokenSource Stop, Task Supervising) : IAsyncDisposable
    {
        /// <summary>Stops the supervision and waits for every run it started to end.</summary>
        public async Task StopAsync()
        {
            await Stop.CancelAsync();
            await Supervising;
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            Stop.Dispose();
            await Host.DisposeAsync();
        }
    }

    /// <summary>A scheduler of its own over the host's packs, with <paramref name="runner"/> as its only sensor runner.</summary>
    private static SensorScheduler NewScheduler(StormTestHost host, ISensorRunner runner, ISensorStore store, bool longRunning = false,
        Microsoft.Extensions.Logging.ILogger<SensorScheduler>? logger = null, TimeSpan? lease = null) =>
        new(host.Services.GetRequiredService<PackCatalog>(), [runner], store, host.Services.GetRequiredService<TriggerDispatcher>(),
            host.Services.GetRequiredService<KeyValueService>(),
            Options.Create(new SensorOptions { RunLongRunning = longRunning, LongRunningLease = lease ?? TimeSpan.FromSeconds(30), MaxRestartBackoff = TimeSpan.FromMilliseconds(200) }),
            TimeProvider.System, logger ?? NullLogger<SensorScheduler>.Instance);

    private static async Task<SensorRecord> PolledAsync(StormTestHost host, Func<SensorRecord, bool> done, string what)
    {
        var scheduler = host.Services.GetRequiredService<SensorScheduler>();
        var store = host.Services.GetRequiredService<ISensorStore>();
        return (await Eventually.ReturnsAsync(async () =>
        {
            await scheduler.RunDueAsync(CancellationToken.None);
            return await store.GetAsync("watch.NewFilesSensor", CancellationToken.None);
        }, r => r is not null && done(r), what: what))!;
    }

    private static Task<IReadOnlyList<TriggerInstanceRecord>> InstancesAsync(IAuditStore audit) =>
        audit.QueryTriggerInstancesAsync(new AuditQuery(Limit: 100), CancellationToken.None);

    [Fact]
    public async Task CSharpPollingSensor_DispatchesATriggerThatFiresItsRule_KeepsItsStateAcrossPolls_AndUsesTheDatastore()
    {
        WatchPack();
        Directory.CreateDirectory(_inbox);
        await File.WriteAllTextAsync(Path.Combine(_inbox, "a.txt"), "a");
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), _packs.Root);

        var first = await PolledAsync(host, r => r.Polls >= 1, "the first poll");
        var execution = await Eventually.ReturnsAsync(() => audit.QueryExecutionsAsync(new AuditQuery(), CancellationToken.None),
            e => e.Count == 1 && ExecutionStatus.IsTerminal(e[0].Status), what: "the rule's execution");
        // Polls with nothing new dispatch nothing: the sensor remembers what it saw.
        await PolledAsync(host, r => r.Polls >= first.Polls + 2, "two more polls");
        await File.WriteAllTextAsync(Path.Combine(_inbox, "b.txt"), "bb");
        var third = await PolledAsync(host, r => r.Polls >= first.Polls + 3, "a poll after b.txt");
        var instances = await Eventually.ReturnsAsync(() => InstancesAsync(audit), i => i.Count == 2, what: "two trigger instances");
        var keys = host.Services.GetRequiredService<KeyValueService>();

        Assert.Equal(SensorStates.Running, first.Status);
        Assert.Equal(ExecutionStatus.Succeeded, execution[0].Status);
        Assert.Equal("got a.txt", execution[0].Result!["stdout"]!.GetValue<string>());
        Assert.Equal(["a.txt", "b.txt"], instances.Select(i => i.Payload!["file"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.All(instances, i => Assert.Equal("watch.new_file", i.TriggerType));
        Assert.All(instances, i => Assert.Equal("sensor:watch.NewFilesSensor", i.User));
        Assert.All(instances, i => Assert.Equal(_inbox, i.TriggerParameters!["directory"]!.GetValue<string>()));
        Assert.All(instances, i => Assert.False(string.IsNullOrEmpty(i.TraceTag)));
        Assert.Equal(2L, instances.Single(i => i.Payload!["file"]!.GetValue<string>() == "b.txt").Payload!["size"]!.GetValue<long>());
        Assert.Equal(2, third.State["seen"]!.AsObject().Single().Value!.AsArray().Count);
        Assert.Equal("2", (await keys.GetAsync("system", "watch.NewFilesSensor:dispatched", false, CancellationToken.None))!.Value);
        Assert.Contains(host.Logs, l => l.Contains("Sensor watch.NewFilesSensor [info] dispatched 1 new file(s)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ADispatchViolatingThePayloadSchema_IsRefusedWithTheReason_NothingIsDispatched_AndTheStatusShowsIt()
    {
        WatchPack(sizeType: "string");
        Directory.CreateDirectory(_inbox);
        await File.WriteAllTextAsync(Path.Combine(_inbox, "a.txt"), "a");
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), _packs.Root);

        var record = await PolledAsync(host, r => r.Polls >= 1, "the first poll");
        var listed = (await host.Api.ListSensorsAsync(CancellationToken.None)).Body!.AsArray().Single()!;

        Assert.Equal(SensorStates.Failing, record.Status);
        Assert.Contains("the payload does not match trigger type 'watch.new_file''s payload_schema", record.LastError, StringComparison.Ordinal);
        Assert.Contains("size", record.LastError, StringComparison.Ordinal);
        Assert.Empty(await InstancesAsync(audit));
        Assert.Equal("failing", listed["state"]!.GetValue<string>());
        Assert.Equal(record.LastError, listed["last_error"]!.GetValue<string>());
        Assert.Contains(host.Logs, l => l.Contains("Sensor watch.NewFilesSensor dispatch of watch.new_file:", StringComparison.Ordinal) && l.Contains("refused", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AFailingPoll_RecordsItsLastError_IsRetriedAtTheNextInterval_AndRecovers()
    {
        WatchPack();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);

        var failed = await PolledAsync(host, r => r.ConsecutiveFailures >= 2, "two failed polls");
        Directory.CreateDirectory(_inbox);
        var recovered = await PolledAsync(host, r => r.Status == SensorStates.Running, "a poll that succeeds");

        Assert.Equal(SensorStates.Failing, failed.Status);
        Assert.Equal($"directory '{_inbox}' does not exist", failed.LastError);
        Assert.NotNull(failed.LastErrorAt);
        Assert.Equal(0, recovered.ConsecutiveFailures);
        Assert.Contains(host.Logs, l => l.Contains("Sensor watch.NewFilesSensor poll failed (1 in a row)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SensorsApi_ListsEachSensor_WithItsRunnerIntervalTriggerTypesAndState()
    {
        WatchPack();
        _packs.Write("watch/sensors/off.yaml", "class_name: Off\nentry_point: lib/ExampleActions.dll:ExampleActions.NewFilesSensor\nenabled: false\n");
        _packs.Write("watch/sensors/py.yaml", "class_name: Py\nentry_point: py_sensor.py\npoll_interval: 45\n");
        _packs.Write("watch/sensors/py_sensor.py", "class Py(object):\n    pass\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root, services =>
            services.RemoveAll<ISensorRunner>().AddSingleton<ISensorRunner, DotnetSensorRunner>());
        var routes = ServerlessStorm.Engine.Api.ApiRoutes.For(host.Api);

        var sensors = (await host.Api.ListSensorsAsync(CancellationToken.None)).Body!.AsArray().ToDictionary(s => s!["ref"]!.GetValue<string>());

        Assert.Equal(["watch.NewFilesSensor", "watch.Off", "watch.Py"], sensors.Keys.Order(StringComparer.Ordinal));
        var polled = sensors["watch.NewFilesSensor"]!;
        Assert.Equal(("watch", true, 1, "dotnet", "pending"), (polled["pack"]!.GetValue<string>(), polled["enabled"]!.GetValue<bool>(),
            polled["poll_interval"]!.GetValue<int>(), polled["runner"]!.GetValue<string>(), polled["state"]!.GetValue<string>()));
        Assert.Equal(["watch.new_file"], polled["trigger_types"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal("disabled", sensors["watch.Off"]!["state"]!.GetValue<string>());
        Assert.Null(sensors["watch.Off"]!["poll_interval"]); // none declared, as StackStorm's API shows it
        Assert.Equal(("no-runner", 45), (sensors["watch.Py"]!["state"]!.GetValue<string>(), sensors["watch.Py"]!["poll_interval"]!.GetValue<int>()));
        Assert.Null(sensors["watch.Py"]!["runner"]);
        Assert.All(routes.Where(r => r.Template is "/api/v1/sensors" or "/api/v1/sensortypes"), r => Assert.Equal(Security.Permissions.SensorTypeList, r.Permission));
        Assert.Equal(2, routes.Count(r => r.Template is "/api/v1/sensors" or "/api/v1/sensortypes"));
    }

    [Fact]
    public async Task TheNextPoll_IsWhenTheSensorAsks_NoSoonerThanASecond()
    {
        // A real Python sensor: the first poll asks for 0.01 s between polls, the second for two minutes.
        _packs.Write("watch/sensors/pacer.yaml", "class_name: Pacer\nentry_point: pacer.py\n");
        _packs.Write("watch/sensors/pacer.py", """
            from st2reactor.sensor.base import PollingSensor

            class Pacer(PollingSensor):
                def setup(self):
                    pass

                def poll(self):
                    self._polls = getattr(self, "_polls", 0) + 1
                    self.set_poll_interval(0.01 if self._polls == 1 else 120)
            """);
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var runner = new ServerlessStorm.Engine.Python.PythonSensorRunner(new ServerlessStorm.Engine.Python.HostPythonEnvironments(
            Options.Create(new ServerlessStorm.Engine.Python.PythonOptions { Interpreter = "/usr/bin/python3" })));
        var store = new InMemorySensorStore();
        var scheduler = NewScheduler(host, runner, store);

        await scheduler.RunDueAsync(CancellationToken.None);
        var first = await store.GetAsync("watch.Pacer", CancellationToken.None);
        await Eventually.TrueAsync(() => DateTimeOffset.UtcNow >= first!.NextPoll, what: "the first poll's next poll to fall due");
        await scheduler.RunDueAsync(CancellationToken.None);
        var second = await store.GetAsync("watch.Pacer", CancellationToken.None);

        Assert.True(first!.LastError is null, first.LastError);
        Assert.Equal(TimeSpan.FromSeconds(1), first.NextPoll - first.LastPoll);
        Assert.Equal((2L, TimeSpan.FromMinutes(2)), (second!.Polls, second.NextPoll - second.LastPoll));
    }

    [Fact]
    public async Task AStoreFailingWhileALongRunningSensorRuns_StopsThatRun_AndNeverRunsTwoAtOnce()
    {
        _packs.Write("watch/sensors/forever.yaml", "class_name: Forever\nentry_point: forever.test\n");
        _packs.Write("watch/sensors/forever.test", "");
        var store = new FlakyStore(new InMemorySensorStore());
        await using var supervised = await SupervisedAsync(store);
        var runner = supervised.Runner;

        store.Failing = true; // the lease renewal throws (a 503 from Table Storage)
        await Eventually.TrueAsync(() => runner.Stopped >= 1, what: "the run stopped when its hold could not be renewed");
        store.Failing = false;
        await Eventually.TrueAsync(() => runner.Started >= 2, what: "a new run once the store answers again");
        await supervised.StopAsync();

        Assert.Equal(1, runner.MostAtOnce);
        Assert.Equal(0, runner.Running);
    }

    [Fact]
    public async Task AHostThatDoesNotRunLongRunningSensors_LeavesAlone_OneHeldByAHostThatDoes()
    {
        _packs.Write("watch/sensors/forever.yaml", "class_name: Forever\nentry_point: forever.test\n");
        _packs.Write("watch/sensors/forever.test", "");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var store = new InMemorySensorStore();
        var serve = NewScheduler(host, new LongRunningRunner(), store, longRunning: true);
        var functions = NewScheduler(host, new LongRunningRunner(), store, longRunning: false);
        await serve.RunDueAsync(CancellationToken.None);
        var found = await store.GetAsync("watch.Forever", CancellationToken.None);
        // storm serve holds it while it runs.
        var held = await store.TryWriteAsync(found! with { Holder = serve.InstanceId, LeaseUntil = DateTimeOffset.UtcNow.AddMinutes(1), Status = SensorStates.LongRunning }, CancellationToken.None);

        await functions.RunDueAsync(CancellationToken.None);
        var after = await store.GetAsync("watch.Forever", CancellationToken.None);

        Assert.Equal((held!.Version, SensorStates.LongRunning), (after!.Version, after.Status));
    }

    [Fact]
    public async Task ALongRunningSensorRewrittenAsAPollingSensor_IsPolled_OnceItsCodeChanged()
    {
        // Real Python: first a Sensor with run() forever, then the same file as a PollingSensor.
        _packs.Write("watch/sensors/tail.yaml", "class_name: Tail\nentry_point: tail.py\npoll_interval: 1\n");
        _packs.Write("watch/sensors/tail.py", "from st2reactor.sensor.base import Sensor\n\nclass Tail(Sensor):\n    def setup(self):\n        pass\n\n    def run(self):\n        pass\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var runner = new ServerlessStorm.Engine.Python.PythonSensorRunner(new ServerlessStorm.Engine.Python.HostPythonEnvironments(
            Options.Create(new ServerlessStorm.Engine.Python.PythonOptions { Interpreter = "/usr/bin/python3" })));
        var store = new InMemorySensorStore();
        var functions = NewScheduler(host, runner, store, longRunning: false);

        await functions.RunDueAsync(CancellationToken.None);
        var before = await store.GetAsync("watch.Tail", CancellationToken.None);
        _packs.Write("watch/sensors/tail.py", "from st2reactor.sensor.base import PollingSensor\n\nclass Tail(PollingSensor):\n    def setup(self):\n        pass\n\n    def poll(self):\n        self._seen = 1\n");
        await functions.RunDueAsync(CancellationToken.None);
        var after = await store.GetAsync("watch.Tail", CancellationToken.None);

        Assert.Equal((true, SensorStates.NotRun), (before!.LongRunning, before.Status));
        Assert.True(after!.LastError is null, after.LastError);
        Assert.Equal((false, SensorStates.Running, 1), (after.LongRunning, after.Status, after.State["_seen"]!.GetValue<int>()));
    }

    [Fact]
    public async Task AnOperatorDisablesAndEnablesASensor_ThroughTheApi_WhateverItsYamlSays()
    {
        _packs.Write("watch/sensors/on.yaml", "class_name: On\nentry_point: on.test\npoll_interval: 1\n");
        _packs.Write("watch/sensors/on.test", "");
        _packs.Write("watch/sensors/off.yaml", "class_name: Off\nentry_point: off.test\nenabled: false\npoll_interval: 1\n");
        _packs.Write("watch/sensors/off.test", "");
        var runner = new BlockingRunner();
        runner.Release.SetResult();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root, services =>
            services.RemoveAll<ISensorRunner>().AddSingleton<ISensorRunner>(runner));
        var store = host.Services.GetRequiredService<ISensorStore>();
        var scheduler = host.Services.GetRequiredService<SensorScheduler>();
        var api = host.Api;

        var disabled = await api.UpdateSensorAsync("watch.On", JsonNode.Parse("""{"enabled": false}"""), CancellationToken.None);
        var enabled = await api.UpdateSensorAsync("watch.Off", JsonNode.Parse("""{"enabled": true, "name": "ignored"}"""), CancellationToken.None);
        await scheduler.RunDueAsync(CancellationToken.None);

        Assert.Equal((200, false, SensorStates.Disabled), (disabled.StatusCode, disabled.Body!["enabled"]!.GetValue<bool>(), disabled.Body["state"]!.GetValue<string>()));
        Assert.Equal((200, true), (enabled.StatusCode, enabled.Body!["enabled"]!.GetValue<bool>()));
        Assert.Equal(0L, (await store.GetAsync("watch.On", CancellationToken.None))!.Polls);
        Assert.Equal(1L, (await store.GetAsync("watch.Off", CancellationToken.None))!.Polls);
        Assert.Equal(404, (await api.UpdateSensorAsync("watch.Nope", JsonNode.Parse("""{"enabled": true}"""), CancellationToken.None)).StatusCode);
        Assert.Equal(400, (await api.UpdateSensorAsync("watch.On", JsonNode.Parse("""{"enabled": "yes"}"""), CancellationToken.None)).StatusCode);
        var route = Assert.Single(ServerlessStorm.Engine.Api.ApiRoutes.For(host.Api), r => r.Method == "PUT" && r.Template == "/api/v1/sensortypes/{ref}");
        Assert.Equal(Security.Permissions.SensorTypeModify, route.Permission);
        Assert.Equal(("sensor_type:watch:On", "watch"), (ServerlessStorm.Engine.Api.StormApi.SensorResource("watch.On").Uid, ServerlessStorm.Engine.Api.StormApi.SensorResource("watch.On").Pack));
    }

    [Fact]
    public async Task DisablingASensorDuringItsPoll_KeepsThatPollsOutcome_AndTheChoice()
    {
        _packs.Write("watch/sensors/slow.yaml", "class_name: Slow\nentry_point: slow.test\npoll_interval: 1\n");
        _packs.Write("watch/sensors/slow.test", "");
        var runner = new BlockingRunner();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var store = new InMemorySensorStore();
        var scheduler = NewScheduler(host, runner, store);

        var polling = scheduler.StartDue(CancellationToken.None);
        await Eventually.TrueAsync(() => runner.Started == 1, what: "the poll");
        await scheduler.SetEnabledAsync("watch.Slow", enabled: false, CancellationToken.None);
        runner.Release.SetResult();
        await Task.WhenAll(polling);
        var after = await store.GetAsync("watch.Slow", CancellationToken.None);

        Assert.Equal((1L, 1, false, (string?)null), (after!.Polls, after.State["polls"]!.GetValue<int>(), after.Enabled, after.Holder));
    }

    [Fact]
    public async Task DisablingARunningLongRunningSensor_StopsIt_AndItStaysStopped()
    {
        _packs.Write("watch/sensors/forever.yaml", "class_name: Forever\nentry_point: forever.test\n");
        _packs.Write("watch/sensors/forever.test", "");
        var store = new InMemorySensorStore();
        await using var supervised = await SupervisedAsync(store);
        var (runner, serve) = (supervised.Runner, supervised.Scheduler);

        await serve.SetEnabledAsync("watch.Forever", enabled: false, CancellationToken.None);
        await Eventually.TrueAsync(() => runner.Stopped == 1, what: "the run stopped");
        var disabled = await Eventually.ReturnsAsync(() => store.GetAsync("watch.Forever", CancellationToken.None), r => r is { Holder: null }, what: "the hold given back");
        await supervised.StopAsync();

        Assert.Equal((1, 0, false), (runner.Started, runner.Running, disabled!.Enabled));
    }

    [Fact]
    public async Task ALongRunningSensorWhoseCodeChanges_StopsRunningTheOldCode()
    {
        _packs.Write("watch/sensors/forever.yaml", "class_name: Forever\nentry_point: forever.test\n");
        _packs.Write("watch/sensors/forever.test", "version 1");
        var store = new InMemorySensorStore();
        await using var supervised = await SupervisedAsync(store);
        var (runner, serve) = (supervised.Runner, supervised.Scheduler);

        _packs.Write("watch/sensors/forever.test", "version 2, deployed");
        await Eventually.TrueAsync(() => runner.Stopped == 1, what: "the old code's run stopped");
        await serve.RunDueAsync(CancellationToken.None); // the next round finds out what the new code is
        await Eventually.TrueAsync(() => runner.Started == 2, what: "the new code running");
        await supervised.StopAsync();

        Assert.Equal(1, runner.MostAtOnce);
    }

    [Fact]
    public async Task TwoSchedulersOnOneStore_PollASensorOnce_AndAPollThatOverrunsIsNotStartedAgain()
    {
        _packs.Write("watch/sensors/slow.yaml", "class_name: Slow\nentry_point: slow.test\npoll_interval: 1\n");
        _packs.Write("watch/sensors/slow.test", "");
        var runner = new BlockingRunner();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var store = new InMemorySensorStore();
        SensorScheduler Scheduler() => NewScheduler(host, runner, store);
        var (one, two) = (Scheduler(), Scheduler());

        var polling = one.StartDue(CancellationToken.None);
        await Eventually.TrueAsync(() => runner.Started == 1, what: "the first scheduler's poll");
        await Task.WhenAll(two.StartDue(CancellationToken.None));
        var again = one.StartDue(CancellationToken.None);
        var held = await store.GetAsync("watch.Slow", CancellationToken.None);
        runner.Release.SetResult();
        await Task.WhenAll(polling);
        var after = await store.GetAsync("watch.Slow", CancellationToken.None);

        _ = Assert.Single(polling);
        Assert.Empty(again);
        Assert.Equal(1, runner.Started);
        Assert.Equal(1, runner.MostAtOnce);
        Assert.Equal(one.InstanceId, held!.Holder);
        Assert.Equal((1L, (string?)null, SensorStates.Running), (after!.Polls, after.Holder, after.Status));
        Assert.Equal(1, after.State["polls"]!.GetValue<int>());
    }

    [Fact]
    public async Task ALongRunningSensor_IsNotRunWhereTheHostCannot_SayingWhy_AndIsSupervisedAndRestartedWhereItCan()
    {
        _packs.Write("watch/sensors/forever.yaml", "class_name: Forever\nentry_point: forever.test\n");
        _packs.Write("watch/sensors/forever.test", "");
        var runner = new LongRunningRunner();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        SensorScheduler Scheduler(ISensorStore store, bool longRunning) => NewScheduler(host, runner, store, longRunning);

        var functionsStore = new InMemorySensorStore();
        await Scheduler(functionsStore, longRunning: false).RunDueAsync(CancellationToken.None);
        var notRun = await functionsStore.GetAsync("watch.Forever", CancellationToken.None);

        var serveStore = new InMemorySensorStore();
        var serve = Scheduler(serveStore, longRunning: true);
        await serve.RunDueAsync(CancellationToken.None);
        using var stop = new CancellationTokenSource();
        var supervising = serve.SuperviseLongRunningAsync(TimeSpan.FromMilliseconds(50), stop.Token);
        await Eventually.TrueAsync(() => runner.Runs >= 2, what: "a restart after run() failed");
        var failing = await serveStore.GetAsync("watch.Forever", CancellationToken.None);
        await stop.CancelAsync();
        await supervising;

        Assert.Equal((SensorStates.NotRun, true), (notRun!.Status, notRun.LongRunning));
        Assert.Equal(SensorScheduler.LongRunningInFunctions, notRun.LastError);
        Assert.True(failing!.LongRunning);
        Assert.Equal("lost the connection", failing.LastError);
        Assert.True(failing.ConsecutiveFailures >= 1);
    }

    [Fact]
    public async Task ASensorsErrors_AreMaskedAndCut_WhenKeptAndLogged_FromAPollAndFromALongRunningRun()
    {
        _packs.Write("watch/sensors/leaky.yaml", "class_name: Leaky\nentry_point: leaky.test\npoll_interval: 1\n");
        _packs.Write("watch/sensors/leaky.test", "");
        _packs.Write("watch/sensors/forever.yaml", "class_name: Forever\nentry_point: forever.test\n");
        _packs.Write("watch/sensors/forever.test", "");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        await host.Services.GetRequiredService<KeyValueService>().SetAsync("system", "token", "leaky-canary-77", secret: true, ttl: null, CancellationToken.None);
        // The error is far over a Table string's 64 KiB, with the secret at its start and past the cut.
        var error = "token leaky-canary-77 refused; " + new string('x', 70_000) + " leaky-canary-77";
        var runner = new ErrorRunner(error);
        var store = new InMemorySensorStore();
        // The host's logger: the test reads what was logged.
        var scheduler = NewScheduler(host, runner, store, longRunning: true, host.Services.GetRequiredService<Microsoft.Extensions.Logging.ILogger<SensorScheduler>>());

        await scheduler.RunDueAsync(CancellationToken.None);
        var polled = await store.GetAsync("watch.Leaky", CancellationToken.None);
        using var stop = new CancellationTokenSource();
        var supervising = scheduler.SuperviseLongRunningAsync(TimeSpan.FromMilliseconds(50), stop.Token);
        var ran = await Eventually.ReturnsAsync(() => store.GetAsync("watch.Forever", CancellationToken.None),
            r => r is { ConsecutiveFailures: >= 1 }, what: "a failed run()");
        await stop.CancelAsync();
        await supervising;

        foreach (var record in new[] { polled!, ran! })
        {
            Assert.Equal(SensorStates.Failing, record.Status);
            Assert.StartsWith("token ", record.LastError, StringComparison.Ordinal);
            Assert.DoesNotContain("leaky-canary-77", record.LastError, StringComparison.Ordinal);
            Assert.True(record.LastError!.Length < SensorScheduler.MaxErrorLength + 100, $"{record.Ref}'s error is {record.LastError.Length} chars");
            Assert.EndsWith("more characters cut]", record.LastError, StringComparison.Ordinal);
            Assert.Null(record.Holder);
        }

        Assert.Contains(host.Logs, l => l.Contains("watch.Forever", StringComparison.Ordinal));
        Assert.Contains(host.Logs, l => l.Contains("watch.Leaky", StringComparison.Ordinal));
        Assert.DoesNotContain(host.Logs, l => l.Contains("leaky-canary-77", StringComparison.Ordinal) || l.Length > 10_000);
    }

    [Fact]
    public async Task APollCanceledByTheHostStopping_GivesItsHoldBack_SoARestartedSchedulerPollsAtOnce()
    {
        _packs.Write("watch/sensors/slow.yaml", "class_name: Slow\nentry_point: slow.test\npoll_interval: 60\n");
        _packs.Write("watch/sensors/slow.test", "");
        var runner = new BlockingRunner();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var store = new InMemorySensorStore();
        SensorScheduler Scheduler() => NewScheduler(host, runner, store);

        using var stopping = new CancellationTokenSource();
        var before = Scheduler();
        var polling = before.StartDue(stopping.Token);
        await Eventually.TrueAsync(() => runner.Started == 1, what: "the first poll");
        var held = await store.GetAsync("watch.Slow", CancellationToken.None);
        await stopping.CancelAsync();
        // The stopping host's round ends canceled, as before; what matters is what it left in the store.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Task.WhenAll(polling));
        var released = await store.GetAsync("watch.Slow", CancellationToken.None);

        var restarted = Scheduler();
        var again = restarted.StartDue(CancellationToken.None);
        await Eventually.TrueAsync(() => runner.Started == 2, what: "the restarted scheduler's poll");
        runner.Release.SetResult();
        await Task.WhenAll(again);
        var after = await store.GetAsync("watch.Slow", CancellationToken.None);

        Assert.Equal(before.InstanceId, held!.Holder);
        Assert.NotNull(held.LeaseUntil);
        Assert.Equal(((string?)null, (DateTimeOffset?)null, 0L, held.Status), (released!.Holder, released.LeaseUntil, released.Polls, released.Status));
        Assert.Null(released.NextPoll);
        Assert.Equal((1L, (string?)null, SensorStates.Running), (after!.Polls, after.Holder, after.Status));
    }

    [Fact]
    public void SensorMetadata_IsParsed_AndABadPollIntervalOrAMissingEntryPoint_AreProblemsNamingFileLineAndField()
    {
        _packs.Write("watch/sensors/ok.yaml", "class_name: Ok\nentry_point: ok.py\nenabled: false\npoll_interval: 45\ntrigger_types:\n  - name: thing\n");
        _packs.Write("watch/sensors/ok.py", "class Ok(object):\n    pass\n");
        _packs.Write("watch/sensors/soon.yaml", "class_name: Soon\nentry_point: ok.py\npoll_interval: soon\n");
        _packs.Write("watch/sensors/gone.yaml", "class_name: Gone\n\nentry_point: gone.py\n");
        _packs.Write("watch/sensors/away.yaml", "class_name: Away\nentry_point: ../../core/pack.yaml\n");

        var result = new PackLoader(RunnerRegistry.Default) { SensorRunners = [new DotnetSensorRunner()] }.LoadFrom(_packs.Root);
        PackProblem ProblemOf(string file) => Assert.Single(result.Problems, p => p.File.EndsWith($"/{file}", StringComparison.Ordinal));

        var ok = Assert.Single(result.Catalog.Sensors, s => s.Ref == "watch.Ok");
        Assert.Equal((false, TimeSpan.FromSeconds(45), "ok.py"), (ok.Enabled, ok.PollInterval, ok.EntryPoint));
        Assert.Equal(["watch.thing"], ok.TriggerTypes);
        Assert.Equal(("poll_interval", 3), (ProblemOf("soon.yaml").Field, ProblemOf("soon.yaml").Position.Line));
        Assert.Contains("a number from 1 to 86400, got 'soon'", ProblemOf("soon.yaml").Message, StringComparison.Ordinal);
        Assert.Equal(("entry_point", 3), (ProblemOf("gone.yaml").Field, ProblemOf("gone.yaml").Position.Line));
        Assert.StartsWith("'gone.py' does not exist in ", ProblemOf("gone.yaml").Message, StringComparison.Ordinal);
        Assert.Equal("'../../core/pack.yaml' is outside the pack", ProblemOf("away.yaml").Message);
        // No runner of this loader runs Python: the sensor loads with a warning saying so.
        Assert.Contains(result.Warnings, w => w.File.EndsWith("/ok.yaml", StringComparison.Ordinal) && w.Message.Contains("sensor 'Ok' does not run here", StringComparison.Ordinal));
    }

    // A runner whose poll waits until released, counting how many polls run at once.
    private sealed class BlockingRunner : ISensorRunner
    {
        private int _running;

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Started;

        public int MostAtOnce;

        public bool Runs(SensorDefinition sensor) => sensor.EntryPoint?.EndsWith(".test", StringComparison.Ordinal) == true;

        public async Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Started);
            var now = Interlocked.Increment(ref _running);
            InterlockedMax(ref MostAtOnce, now);
            await Release.Task.WaitAsync(cancellationToken);
            Interlocked.Decrement(ref _running);
            var state = (JsonObject)run.State.DeepClone();
            state["polls"] = (state["polls"]?.GetValue<int>() ?? 0) + 1;
            return new SensorPollOutcome(state);
        }

        public Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken) => Task.FromResult<string?>(null);
    }

    // A polling sensor (leaky.test) and a long-running one (forever.test) that both fail with the given error.
    private sealed class ErrorRunner(string error) : ISensorRunner
    {
        public bool Runs(SensorDefinition sensor) => sensor.EntryPoint is "leaky.test" or "forever.test";

        public Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken) =>
            Task.FromResult(run.Sensor.EntryPoint == "forever.test" ? new SensorPollOutcome(run.State) { LongRunning = true } : new SensorPollOutcome(run.State, error));

        public Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken) =>
            Task.FromException<string?>(new InvalidOperationException(error));
    }

    // A long-running Sensor whose run() fails at once.
    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    // A long-running sensor whose run() goes on until it is stopped; counts the runs at once.
    private sealed class RunsUntilStopped : ISensorRunner
    {
        public int Started;
        public int Stopped;
        public int Running;
        public int MostAtOnce;

        bool ISensorRunner.Runs(SensorDefinition sensor) => sensor.EntryPoint?.EndsWith(".test", StringComparison.Ordinal) == true;

        public Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken) =>
            Task.FromResult(new SensorPollOutcome(run.State) { LongRunning = true });

        public async Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Started);
            var now = Interlocked.Increment(ref Running);
            InterlockedMax(ref MostAtOnce, now);
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
                return null;
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref Stopped);
                return null;
            }
            finally
            {
                Interlocked.Decrement(ref Running);
            }
        }
    }

    // A store whose writes throw while Failing is set, as Table Storage does when it is unavailable.
    private sealed class FlakyStore(ISensorStore inner) : ISensorStore
    {
        public volatile bool Failing;

        public Task<SensorRecord?> GetAsync(string sensorRef, CancellationToken cancellationToken) => inner.GetAsync(sensorRef, cancellationToken);

        public Task<IReadOnlyList<SensorRecord>> ListAsync(CancellationToken cancellationToken) => inner.ListAsync(cancellationToken);

        public Task<SensorRecord?> TryWriteAsync(SensorRecord record, CancellationToken cancellationToken) =>
            Failing ? throw new InvalidOperationException("503 Service Unavailable") : inner.TryWriteAsync(record, cancellationToken);
    }

    private sealed class LongRunningRunner : ISensorRunner
    {
        public int Runs;

        bool ISensorRunner.Runs(SensorDefinition sensor) => sensor.EntryPoint?.EndsWith(".test", StringComparison.Ordinal) == true;

        public Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken) =>
            Task.FromResult(new SensorPollOutcome(run.State) { LongRunning = true });

        public Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Runs);
            return Task.FromResult<string?>("lost the connection");
        }
    }
}
