using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Python;
using ServerlessStorm.Engine.Sensors;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// Sensor polls as ticks, as the Function app schedules them: each poll's next one is a delayed message on the timers
/// queue that its record names, so copies are dropped, a re-arm mends a broken chain without starting another, and
/// nothing is scheduled for an app without sensors.
/// </summary>
public sealed class SensorTickTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 12, 3, 9, 0, 0, TimeSpan.Zero);

    private readonly TempPacks _packs = new TempPacks().WithPack("watch");
    private readonly ManualTimeProvider _time = new(Start);
    private readonly PublishedMessages _bus = new(new InMemoryMessageBus());

    public void Dispose() => _packs.Dispose();

    private ServiceProvider Services(bool ticks = true, IMessageBus? bus = null)
    {
        var services = InMemoryStorm.Compose(_packs.Root, _time, bus ?? _bus).AddLogging();
        services.Configure<SensorOptions>(o => o.Ticks = ticks);
        services.Configure<PythonOptions>(o => o.Interpreter = "/usr/bin/python3");
        return services.BuildServiceProvider();
    }

    // A real Python polling sensor that counts its polls in its kept state, every 30 s.
    private void CountingSensor()
    {
        _packs.Write("watch/sensors/counter.yaml", "class_name: Counter\nentry_point: counter.py\npoll_interval: 30\n");
        _packs.Write("watch/sensors/counter.py", """
            from st2reactor.sensor.base import PollingSensor

            class Counter(PollingSensor):
                def setup(self):
                    pass

                def poll(self):
                    self._polls = getattr(self, "_polls", 0) + 1
            """);
    }

    [Fact]
    public async Task EachPoll_SchedulesTheNextAsATick_CopiesAreDropped_AndARearmMendsWithoutASecondChain()
    {
        CountingSensor();
        await using var services = Services();
        var sensors = services.GetRequiredService<SensorScheduler>();
        var queue = services.GetRequiredService<TimersQueueHandler>();
        var store = services.GetRequiredService<ISensorStore>();

        Assert.Equal(1, await sensors.ArmAsync(CancellationToken.None));
        var first = _bus.Take(StormQueues.Timers);
        Assert.Equal(TimeSpan.Zero, first.Delay);

        await queue.HandleAsync(first, CancellationToken.None);
        var polled = await store.GetAsync("watch.Counter", CancellationToken.None);
        var next = _bus.Take(StormQueues.Timers);
        var nextTick = StormEvents.DecodeSensorTick(next);

        Assert.True(polled!.LastError is null, polled.LastError);
        Assert.Equal((1L, 1), (polled.Polls, polled.State["_polls"]!.GetValue<int>()));
        Assert.Equal(TimeSpan.FromSeconds(30), next.Delay);
        Assert.Equal((polled.NextTick, polled.NextPoll), (nextTick.Id, nextTick.At));

        // A copy of the first tick (delivered twice) is dropped; re-arming publishes the chain's own next tick again,
        // under a message id of its own (a transport's duplicate detection would drop the one already seen).
        await queue.HandleAsync(first, CancellationToken.None);
        Assert.Empty(_bus.On(StormQueues.Timers));
        Assert.Equal(1, await sensors.ArmAsync(CancellationToken.None));
        var rearmed = _bus.Take(StormQueues.Timers);
        Assert.Equal(nextTick.Id, StormEvents.DecodeSensorTick(rearmed).Id);
        Assert.NotEqual(next.Id, rearmed.Id);

        _time.Advance(TimeSpan.FromSeconds(30));
        await queue.HandleAsync(next, CancellationToken.None);
        var again = await store.GetAsync("watch.Counter", CancellationToken.None);

        Assert.Equal((2L, 2), (again!.Polls, again.State["_polls"]!.GetValue<int>()));
        Assert.Equal(StormEvents.DecodeSensorTick(Assert.Single(_bus.On(StormQueues.Timers))).Id, again.NextTick);
    }

    [Fact]
    public async Task ADisabledSensorsTick_EndsItsChain_AndEnablingItStartsAFreshOne()
    {
        CountingSensor();
        await using var services = Services();
        var sensors = services.GetRequiredService<SensorScheduler>();
        var queue = services.GetRequiredService<TimersQueueHandler>();
        await sensors.ArmAsync(CancellationToken.None);
        var armed = _bus.Take(StormQueues.Timers);

        await sensors.SetEnabledAsync("watch.Counter", enabled: false, CancellationToken.None);
        await queue.HandleAsync(armed, CancellationToken.None);
        Assert.Empty(_bus.On(StormQueues.Timers));
        Assert.Equal(0, await sensors.ArmAsync(CancellationToken.None));

        _time.Advance(TimeSpan.FromSeconds(5));
        await sensors.SetEnabledAsync("watch.Counter", enabled: true, CancellationToken.None);
        var fresh = _bus.Take(StormQueues.Timers);
        await queue.HandleAsync(fresh, CancellationToken.None);

        Assert.NotEqual(armed.Id, fresh.Id); // a tick id already seen would be dropped as a duplicate by Service Bus
        Assert.Equal(1L, (await services.GetRequiredService<ISensorStore>().GetAsync("watch.Counter", CancellationToken.None))!.Polls);
        Assert.Single(_bus.On(StormQueues.Timers));
    }

    [Fact]
    public async Task ATickFindingTheSensorHeld_ComesBackWhenTheHoldLapses_SoADeadPollDoesNotEndTheChain()
    {
        CountingSensor();
        await using var services = Services();
        var store = services.GetRequiredService<ISensorStore>();
        await services.GetRequiredService<SensorScheduler>().ArmAsync(CancellationToken.None);
        var tick = _bus.Take(StormQueues.Timers);
        var record = await store.GetAsync("watch.Counter", CancellationToken.None);
        // An instance that died mid-poll: its hold lasts the poll's timeout and 30 s more.
        await store.TryWriteAsync(record! with { Holder = "dead-instance", LeaseUntil = Start.AddMinutes(5) }, CancellationToken.None);

        await services.GetRequiredService<TimersQueueHandler>().HandleAsync(tick, CancellationToken.None);
        var back = _bus.Take(StormQueues.Timers);

        Assert.Equal(0L, (await store.GetAsync("watch.Counter", CancellationToken.None))!.Polls);
        Assert.Equal(StormEvents.DecodeSensorTick(tick).Id, StormEvents.DecodeSensorTick(back).Id);
        Assert.NotEqual(tick.Id, back.Id);
        Assert.Equal(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1), back.Delay);

        _time.Advance(back.Delay);
        await services.GetRequiredService<TimersQueueHandler>().HandleAsync(back, CancellationToken.None);
        Assert.Equal(1L, (await store.GetAsync("watch.Counter", CancellationToken.None))!.Polls);
    }

    [Fact]
    public async Task ATickHandledByAnInstanceWhoseClockIsBehind_PollsAtTheTicksTime()
    {
        CountingSensor();
        await using var services = Services();
        var queue = services.GetRequiredService<TimersQueueHandler>();
        await services.GetRequiredService<SensorScheduler>().ArmAsync(CancellationToken.None);
        await queue.HandleAsync(_bus.Take(StormQueues.Timers), CancellationToken.None);
        var next = _bus.Take(StormQueues.Timers);

        // Delivered 30 s later by the publisher's clock; this instance's clock has not moved.
        await queue.HandleAsync(next, CancellationToken.None);

        Assert.Equal(2L, (await services.GetRequiredService<ISensorStore>().GetAsync("watch.Counter", CancellationToken.None))!.Polls);
    }

    [Fact]
    public async Task APublishThatFails_LeavesTheSensorAsItWas_SoTheTicksRedeliveryPollsIt()
    {
        CountingSensor();
        var flaky = new FlakyBus(_bus);
        await using var services = Services(bus: flaky);
        var store = services.GetRequiredService<ISensorStore>();
        var queue = services.GetRequiredService<TimersQueueHandler>();
        await services.GetRequiredService<SensorScheduler>().ArmAsync(CancellationToken.None);
        var tick = _bus.Take(StormQueues.Timers);

        flaky.Failing = true;
        await Assert.ThrowsAsync<InvalidOperationException>(() => queue.HandleAsync(tick, CancellationToken.None));
        var failed = await store.GetAsync("watch.Counter", CancellationToken.None);
        flaky.Failing = false;
        await queue.HandleAsync(tick with { DeliveryCount = 2 }, CancellationToken.None);
        var polled = await store.GetAsync("watch.Counter", CancellationToken.None);

        Assert.Equal((0L, (string?)null, StormEvents.DecodeSensorTick(tick).Id), (failed!.Polls, failed.Holder, failed.NextTick));
        Assert.Equal(1L, polled!.Polls);
        Assert.Equal(polled.NextTick, StormEvents.DecodeSensorTick(Assert.Single(_bus.On(StormQueues.Timers))).Id);
    }

    [Fact]
    public async Task AHostWithoutTicksThatTakesATick_GoesOnWithTheChain()
    {
        // storm serve sharing the timers queue with the Function app.
        CountingSensor();
        await using var services = Services(ticks: false);
        var tick = SensorTick.For("watch.Counter", Start);

        await services.GetRequiredService<TimersQueueHandler>().HandleAsync(StormEvents.Encode(tick, tick.Id), CancellationToken.None);
        var polled = await services.GetRequiredService<ISensorStore>().GetAsync("watch.Counter", CancellationToken.None);

        Assert.Equal(1L, polled!.Polls);
        Assert.Equal(polled.NextTick, StormEvents.DecodeSensorTick(Assert.Single(_bus.On(StormQueues.Timers))).Id);
    }

    [Fact]
    public async Task ATickNoRunnerHereRuns_GoesToAHostThatDoes_ForAnHourAtMost_AndNotAtAllWhenDisabled()
    {
        // A Ruby sensor: loaded (its trigger types are registered), but no runner of this host runs it.
        _packs.Write("watch/sensors/rb.yaml", "class_name: Rb\nentry_point: rb.rb\npoll_interval: 30\n");
        _packs.Write("watch/sensors/rb.rb", "");
        await using var services = Services();
        var queue = services.GetRequiredService<TimersQueueHandler>();
        var tick = SensorTick.For("watch.Rb", Start);

        await queue.HandleAsync(StormEvents.Encode(tick, tick.Id), CancellationToken.None);
        var forwarded = _bus.Take(StormQueues.Timers);
        _time.Advance(TimeSpan.FromHours(2));
        await queue.HandleAsync(forwarded, CancellationToken.None);

        Assert.Equal((tick.Id, TimeSpan.FromSeconds(5)), (StormEvents.DecodeSensorTick(forwarded).Id, forwarded.Delay));
        Assert.Empty(_bus.On(StormQueues.Timers)); // an hour on, the hourly re-arm of a host that runs it takes over

        await services.GetRequiredService<SensorScheduler>().SetEnabledAsync("watch.Rb", enabled: false, CancellationToken.None);
        await queue.HandleAsync(StormEvents.Encode(tick, tick.Id), CancellationToken.None);
        Assert.Empty(_bus.On(StormQueues.Timers));
    }

    [Fact]
    public async Task ATickForASensorFoundLongRunning_IsDropped()
    {
        _packs.Write("watch/sensors/forever.yaml", "class_name: Forever\nentry_point: forever.py\n");
        _packs.Write("watch/sensors/forever.py", "from st2reactor.sensor.base import Sensor\n\nclass Forever(Sensor):\n    def setup(self):\n        pass\n\n    def run(self):\n        pass\n");
        await using var services = Services();
        var queue = services.GetRequiredService<TimersQueueHandler>();
        await services.GetRequiredService<SensorScheduler>().ArmAsync(CancellationToken.None);
        var tick = _bus.Take(StormQueues.Timers);

        await queue.HandleAsync(tick, CancellationToken.None); // the poll finds it long-running: no next tick
        var record = await services.GetRequiredService<ISensorStore>().GetAsync("watch.Forever", CancellationToken.None);
        await queue.HandleAsync(tick with { DeliveryCount = 2 }, CancellationToken.None); // a copy

        Assert.Equal((true, (string?)null), (record!.LongRunning, record.NextTick));
        Assert.Empty(_bus.On(StormQueues.Timers));
    }

    private sealed class FlakyBus(IMessageBus inner) : DelegatingMessageBus(inner)
    {
        public volatile bool Failing;

        public override Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken) =>
            Failing ? throw new InvalidOperationException("the bus is unavailable") : base.PublishAsync(queue, message, cancellationToken);
    }

    [Fact]
    public async Task NoSensors_NoTicks_AndATickForASensorNoLongerLoaded_EndsItsChain()
    {
        await using var services = Services();
        var sensors = services.GetRequiredService<SensorScheduler>();

        Assert.Equal(0, await sensors.ArmAsync(CancellationToken.None));
        await services.GetRequiredService<TimersQueueHandler>().HandleAsync(
            StormEvents.Encode(SensorTick.For("gone.Sensor", Start), SensorTick.For("gone.Sensor", Start).Id), CancellationToken.None);

        Assert.Empty(_bus.On(StormQueues.Timers));
    }

    [Fact]
    public async Task WithoutTicks_ALoopHostArmsNothing_AndItsPollsPublishNoTick()
    {
        CountingSensor();
        await using var services = Services(ticks: false);
        var sensors = services.GetRequiredService<SensorScheduler>();

        Assert.Equal(0, await sensors.ArmAsync(CancellationToken.None));
        await sensors.RunDueAsync(CancellationToken.None);

        Assert.Equal(1L, (await services.GetRequiredService<ISensorStore>().GetAsync("watch.Counter", CancellationToken.None))!.Polls);
        Assert.Empty(_bus.On(StormQueues.Timers));
    }

    [Fact]
    public async Task ATimersQueueMessage_GoesToTimersOrSensorsByItsType()
    {
        CountingSensor();
        await using var services = Services();
        var queue = services.GetRequiredService<TimersQueueHandler>();
        await services.GetRequiredService<SensorScheduler>().ArmAsync(CancellationToken.None);
        var sensorTick = _bus.Take(StormQueues.Timers);
        var timerTick = StormEvents.Encode(new ServerlessStorm.Engine.Triggers.TimerTick("0123456789abcdef", Start), "timer-0123456789abcdef-1");

        await queue.HandleAsync(timerTick, CancellationToken.None); // no such timer: its chain ends, nothing polled
        Assert.Null((await services.GetRequiredService<ISensorStore>().GetAsync("watch.Counter", CancellationToken.None))!.LastPoll);
        await queue.HandleAsync(sensorTick, CancellationToken.None);

        Assert.Equal(1L, (await services.GetRequiredService<ISensorStore>().GetAsync("watch.Counter", CancellationToken.None))!.Polls);
    }
}
