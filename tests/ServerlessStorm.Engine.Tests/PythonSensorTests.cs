using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Python;
using ServerlessStorm.Engine.Sensors;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>Python sensors through <see cref="PythonSensorRunner"/>, each poll a real /usr/bin/python3 process.</summary>
public sealed class PythonSensorTests : IDisposable
{
    private static readonly string Key = Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    private readonly TempPacks _packs = new();
    private readonly PythonSensorRunner _runner = new(new HostPythonEnvironments(Options.Create(new PythonOptions { Interpreter = "/usr/bin/python3" })));
    private readonly KeyValueService _keys = new(new InMemoryKeyValueStore(), Options.Create(new DatastoreOptions { EncryptionKey = Key }), TimeProvider.System);

    public PythonSensorTests() => _packs.WithPack("watch");

    public void Dispose() => _packs.Dispose();

    /// <summary>
    /// Records what a sensor does; refuses dispatches of triggers named in <see cref="Refused"/>, fails (as a bus that is
    /// down would) those named in <see cref="Failing"/>.
    /// </summary>
    private sealed class RecordingHost(PluginDatastore datastore) : ISensorHost
    {
        public ConcurrentQueue<(string Trigger, JsonNode? Payload, string? TraceTag)> Dispatched { get; } = new();

        public ConcurrentQueue<string> Logs { get; } = new();

        public HashSet<string> Refused { get; } = [];

        public HashSet<string> Failing { get; } = [];

        public Task DispatchAsync(string trigger, JsonNode? payload, string? traceTag, CancellationToken cancellationToken)
        {
            if (Refused.Contains(trigger))
            {
                throw new SensorDispatchException($"payload for {trigger}: 'count' is a required property");
            }

            if (Failing.Contains(trigger))
            {
                throw new InvalidOperationException("the bus is unavailable");
            }

            Dispatched.Enqueue((trigger, payload?.DeepClone(), traceTag));
            return Task.CompletedTask;
        }

        public Task<JsonNode?> DatastoreAsync(DatastoreCall call, CancellationToken cancellationToken) => datastore.HandleAsync(call, cancellationToken);

        public void Log(string level, string message) => Logs.Enqueue($"{level}: {message}");
    }

    private RecordingHost Host(string className) => new(new PluginDatastore(_keys, "watch", className));

    private SensorRun Run(string className, JsonObject? state = null, IReadOnlyList<SensorTrigger>? triggers = null, bool declaresInterval = true)
    {
        var sensor = new SensorDefinition("watch", className, className.ToLowerInvariant() + ".py", true, declaresInterval ? TimeSpan.FromSeconds(30) : SensorDefinition.DefaultPollInterval,
            ["watch.event"], Path.Combine(_packs.Root, "watch", "sensors", className.ToLowerInvariant() + ".yaml")) { PollIntervalDeclared = declaresInterval };
        var pack = new PackDefinition("watch", "1.0.0", "", Path.Combine(_packs.Root, "watch")) { Config = new JsonObject { ["threshold"] = 5 } };
        return new SensorRun(sensor, pack, triggers ?? [], state ?? []);
    }

    private void WriteSensor(string className, string code) => _packs.Write($"watch/sensors/{className.ToLowerInvariant()}.py", code);

    [Fact]
    public async Task Poll_DispatchesTriggers_AndSeesTheTriggersAddedAndTheConfig()
    {
        WriteSensor("Counter", """
            from st2reactor.sensor.base import PollingSensor

            class Counter(PollingSensor):
                def setup(self):
                    self._triggers = []

                def add_trigger(self, trigger):
                    self._triggers.append(trigger["ref"] + ":" + trigger["parameters"]["path"])

                def poll(self):
                    self.sensor_service.dispatch(trigger="watch.event",
                        payload={"triggers": self._triggers, "threshold": self.config["threshold"], "interval": self.get_poll_interval()},
                        trace_tag="tag-1")
            """);
        var host = Host("Counter");

        var outcome = await _runner.PollAsync(Run("Counter", triggers: [new SensorTrigger("watch.t1", "watch.event", new JsonObject { ["path"] = "/var/log" })]), host, CancellationToken.None);

        Assert.Null(outcome.Error);
        Assert.False(outcome.LongRunning);
        var (trigger, payload, traceTag) = Assert.Single(host.Dispatched);
        Assert.Equal(("watch.event", "tag-1"), (trigger, traceTag));
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["triggers"] = new JsonArray("watch.t1:/var/log"), ["threshold"] = 5, ["interval"] = 30.0 }, payload), payload?.ToJsonString());
    }

    [Fact]
    public async Task PollInterval_IsTheYamls_ElseTheClassDefault_AndSetPollIntervalHoldsForThePollsAfter()
    {
        WriteSensor("Pacer", """
            from st2reactor.sensor.base import PollingSensor

            class Pacer(PollingSensor):
                def setup(self):
                    pass

                def poll(self):
                    self._polls = getattr(self, "_polls", 0) + 1
                    self.sensor_service.dispatch("watch.event", {"interval": self.get_poll_interval()})
                    if self._polls == 2:
                        self.set_poll_interval(2)
            """);
        var host = Host("Pacer");

        var declared = await _runner.PollAsync(Run("Pacer"), host, CancellationToken.None);
        var first = await _runner.PollAsync(Run("Pacer", declaresInterval: false), host, CancellationToken.None);
        var second = await _runner.PollAsync(Run("Pacer", first.State, declaresInterval: false), host, CancellationToken.None);
        var third = await _runner.PollAsync(Run("Pacer", second.State, declaresInterval: false), host, CancellationToken.None);

        // The YAML's 30 s reaches the constructor; without it StackStorm's PollingSensor default (5 s) holds.
        Assert.Equal(TimeSpan.FromSeconds(30), declared.PollInterval);
        Assert.Equal(TimeSpan.FromSeconds(5), first.PollInterval);
        Assert.Equal(TimeSpan.FromSeconds(2), second.PollInterval);
        Assert.Equal(TimeSpan.FromSeconds(2), third.PollInterval);
        Assert.Equal([30.0, 5.0, 5.0, 2.0], host.Dispatched.Select(d => d.Payload!["interval"]!.GetValue<double>()));

        // Its YAML's interval changed since (a deployment): the new one holds, as a restarted StackStorm sensor's.
        var redeployed = await _runner.PollAsync(Run("Pacer", third.State), host, CancellationToken.None);
        Assert.Equal(TimeSpan.FromSeconds(30), redeployed.PollInterval);
    }

    [Fact]
    public async Task KeptState_IsRestoredInTheNextPoll_ButNotWhatNoPollChanged()
    {
        WriteSensor("Tail", """
            import datetime
            from st2reactor.sensor.base import PollingSensor

            class Tail(PollingSensor):
                def __init__(self, sensor_service, config=None, poll_interval=None):
                    super(Tail, self).__init__(sensor_service, config, poll_interval)
                    self._last_id = 0
                    self._threshold = config["threshold"]
                    self._when = None

                def setup(self):
                    self._client = object()

                def poll(self):
                    self._last_id += 1
                    self._when = datetime.datetime.now()
                    self.sensor_service.dispatch("watch.event", {"id": self._last_id})
            """);
        var host = Host("Tail");

        var first = await _runner.PollAsync(Run("Tail"), host, CancellationToken.None);
        var second = await _runner.PollAsync(Run("Tail", first.State), host, CancellationToken.None);

        Assert.Null(first.Error);
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["_last_id"] = 1 }, first.State), first.State.ToJsonString());
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["_last_id"] = 2 }, second.State), second.State.ToJsonString());
        Assert.Equal([1, 2], host.Dispatched.Select(d => d.Payload!["id"]!.GetValue<int>()));
    }

    [Fact]
    public async Task RefusedDispatch_IsLoggedWithItsReason_AndTheSensorGoesOn()
    {
        WriteSensor("Mixed", """
            from st2reactor.sensor.base import PollingSensor

            class Mixed(PollingSensor):
                def poll(self):
                    result = self.sensor_service.dispatch("watch.bad", {"wrong": True})
                    self.sensor_service.dispatch("watch.event", {"after_refusal": result is None})
            """);
        var host = Host("Mixed");
        host.Refused.Add("watch.bad");

        var outcome = await _runner.PollAsync(Run("Mixed"), host, CancellationToken.None);

        Assert.Null(outcome.Error);
        Assert.Contains(host.Logs, line => line.Contains("watch.bad", StringComparison.Ordinal) && line.Contains("'count' is a required property", StringComparison.Ordinal));
        var (trigger, payload, _) = Assert.Single(host.Dispatched);
        Assert.Equal("watch.event", trigger);
        Assert.True(payload!["after_refusal"]!.GetValue<bool>());
    }

    [Fact]
    public async Task FailedDispatch_FailsThePoll_AndTheStateIsKeptAsItWas()
    {
        WriteSensor("Flaky", """
            from st2reactor.sensor.base import PollingSensor

            class Flaky(PollingSensor):
                def __init__(self, sensor_service, config=None, poll_interval=None):
                    super(Flaky, self).__init__(sensor_service, config, poll_interval)
                    self._last_id = 0

                def poll(self):
                    self._last_id += 1
                    self.sensor_service.dispatch("watch.down", {"id": self._last_id})
            """);
        var host = Host("Flaky");
        host.Failing.Add("watch.down");
        var state = new JsonObject { ["_last_id"] = 7 };

        var outcome = await _runner.PollAsync(Run("Flaky", state), host, CancellationToken.None);

        Assert.NotNull(outcome.Error);
        Assert.Contains("the bus is unavailable", outcome.Error, StringComparison.Ordinal);
        Assert.True(JsonNode.DeepEquals(state, outcome.State), outcome.State.ToJsonString());
    }

    [Fact]
    public async Task NonFiniteFloatInADispatch_IsSentAsNull_AndTheCallIsAnswered()
    {
        WriteSensor("Gauge", """
            from st2reactor.sensor.base import PollingSensor

            class Gauge(PollingSensor):
                def poll(self):
                    self.sensor_service.dispatch("watch.event", {"value": float("nan")})
                    self.sensor_service.dispatch("watch.event", {"value": 1})
            """);
        var host = Host("Gauge");

        var outcome = await _runner.PollAsync(Run("Gauge"), host, CancellationToken.None);

        Assert.Null(outcome.Error);
        Assert.Equal(new string?[] { null, "1" }, host.Dispatched.Select(d => d.Payload!["value"]?.ToJsonString()));
    }

    [Fact]
    public async Task StateThatJsonWouldChange_IsNotKept_IsLogged_AndThePollSucceeds()
    {
        WriteSensor("Seen", """
            from st2reactor.sensor.base import PollingSensor

            class Seen(PollingSensor):
                def __init__(self, sensor_service, config=None, poll_interval=None):
                    super(Seen, self).__init__(sensor_service, config, poll_interval)
                    self._seen = {}
                    self._names = {}
                    self._mixed = {}

                def poll(self):
                    for item in (101, 102):
                        if item not in self._seen:
                            self.sensor_service.dispatch("watch.event", {"id": item})
                        self._seen[item] = True
                        self._names[str(item)] = True
                    self._mixed = {1: "one", "two": 2}
            """);
        var host = Host("Seen");

        var outcome = await _runner.PollAsync(Run("Seen"), host, CancellationToken.None);

        Assert.Null(outcome.Error);
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["_names"] = new JsonObject { ["101"] = true, ["102"] = true } }, outcome.State), outcome.State.ToJsonString());
        Assert.Contains(host.Logs, line => line.StartsWith("warning: ", StringComparison.Ordinal) && line.Contains("_seen is not kept", StringComparison.Ordinal));
        Assert.Contains(host.Logs, line => line.Contains("_mixed is not kept", StringComparison.Ordinal));
        Assert.Equal(2, host.Dispatched.Count);
    }

    [Fact]
    public async Task ExceptionInPoll_IsTheError_AndTheStateIsKeptAsItWas()
    {
        WriteSensor("Broken", """
            from st2reactor.sensor.base import PollingSensor

            class Broken(PollingSensor):
                def poll(self):
                    self._seen = 99
                    raise ConnectionError("cannot reach the feed")
            """);
        var host = Host("Broken");
        var state = new JsonObject { ["_seen"] = 3 };

        var outcome = await _runner.PollAsync(Run("Broken", state), host, CancellationToken.None);

        Assert.Equal("ConnectionError: cannot reach the feed", outcome.Error);
        Assert.True(JsonNode.DeepEquals(state, outcome.State));
        Assert.Contains(host.Logs, line => line.Contains("Traceback", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SensorService_DatastoreAndLogger_ReachTheHost()
    {
        WriteSensor("Keeper", """
            from st2reactor.sensor.base import PollingSensor

            class Keeper(PollingSensor):
                def setup(self):
                    self._log = self.sensor_service.get_logger(__name__)

                def poll(self):
                    previous = self.sensor_service.get_value("cursor")
                    self.sensor_service.set_value("cursor", "c-42")
                    self._log.info("cursor was %s", previous)
                    print("printed line")
            """);
        var host = Host("Keeper");

        var outcome = await _runner.PollAsync(Run("Keeper"), host, CancellationToken.None);

        Assert.Null(outcome.Error);
        Assert.Equal("c-42", (await _keys.GetAsync("system", "watch.Keeper:cursor", false, CancellationToken.None))!.Value);
        Assert.Contains("info: keeper: cursor was None", host.Logs);
        Assert.Contains("info: printed line", host.Logs);
    }

    [Fact]
    public async Task LongRunningSensor_IsNotPolled_AndItsRunStopsOnCancelWithCleanup()
    {
        WriteSensor("Listener", """
            import time
            from st2reactor.sensor.base import Sensor

            class Listener(Sensor):
                def run(self):
                    self.sensor_service.dispatch("watch.event", {"listening": True})
                    while True:
                        time.sleep(0.05)

                def cleanup(self):
                    self.sensor_service.set_value("cleaned", "yes")
            """);
        var host = Host("Listener");

        var polled = await _runner.PollAsync(Run("Listener"), host, CancellationToken.None);
        Assert.True(polled.LongRunning);
        Assert.Empty(host.Dispatched);

        using var stop = new CancellationTokenSource();
        var running = _runner.RunAsync(Run("Listener"), host, stop.Token);
        await Eventually.TrueAsync(() => !host.Dispatched.IsEmpty, what: "the listener's first dispatch");
        await stop.CancelAsync();

        Assert.Null(await running.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("yes", (await _keys.GetAsync("system", "watch.Listener:cleaned", false, CancellationToken.None))!.Value);
    }

    [Fact]
    public void Runs_PythonEntryPointsOnly()
    {
        Assert.True(_runner.Runs(Run("Tail").Sensor));
        Assert.False(_runner.Runs(Run("Tail").Sensor with { EntryPoint = "Watch.dll:Watch.Sensor" }));
    }
}
