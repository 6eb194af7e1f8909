using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// Timers without a poll: each timer's next occurrence is a delayed message on the timers queue, and handling it
/// fires the occurrence and schedules the next, once, however many copies of a tick there are.
/// </summary>
public sealed class TimerTickTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 12, 2, 10, 0, 7, TimeSpan.Zero);

    private readonly TempPacks _packs = new TempPacks().WithPack("timers");
    private readonly ManualTimeProvider _time = new(Start);
    private readonly PublishedMessages _bus = new(new InMemoryMessageBus());

    public void Dispose() => _packs.Dispose();

    private TimerSensor Sensor(params (string Name, string Trigger)[] rules)
    {
        foreach (var (name, trigger) in rules)
        {
            _packs.Write($"timers/rules/{name}.yaml", $"name: {name}\ntrigger: {trigger}\naction: {{ref: core.noop}}\n");
        }

        var services = InMemoryStorm.Compose(_packs.Root, _time, _bus).AddLogging();
        return services.BuildServiceProvider().GetRequiredService<TimerSensor>();
    }

    private const string EveryThirtySeconds = "{type: core.st2.IntervalTimer, parameters: {unit: seconds, delta: 30}}";

    [Fact]
    public async Task Scheduling_PublishesEachTimersNextOccurrenceOnce_HiddenUntilItFallsDue()
    {
        var sensor = Sensor(("a", EveryThirtySeconds), ("b", EveryThirtySeconds), ("c", "{type: core.st2.CronTimer, parameters: {minute: '*/5'}}"));

        Assert.Equal(2, await sensor.ScheduleAsync(CancellationToken.None)); // a and b share one timer

        var ticks = _bus.On(StormQueues.Timers).Select(m => (Tick: StormEvents.DecodeTimerTick(m), m.Id, m.Delay)).OrderBy(t => t.Tick.At).ToList();
        Assert.Equal([Start.AddSeconds(23), new DateTimeOffset(2026, 12, 2, 10, 5, 0, TimeSpan.Zero)], ticks.Select(t => t.Tick.At));
        Assert.Equal([TimeSpan.FromSeconds(23), TimeSpan.FromSeconds(293)], ticks.Select(t => t.Delay));
        Assert.All(ticks, t => Assert.Equal(t.Tick.Id, t.Id));
        Assert.Empty(_bus.On(StormQueues.TriggerInstances)); // nothing fires before its time
    }

    [Fact]
    public async Task HandlingATick_FiresItsOccurrence_AndSchedulesTheNext()
    {
        var sensor = Sensor(("a", EveryThirtySeconds));
        await sensor.ScheduleAsync(CancellationToken.None);
        var tick = _bus.Take(StormQueues.Timers);

        _time.Advance(tick.Delay);
        await sensor.HandleTickAsync(tick, CancellationToken.None);

        var fired = StormEvents.DecodeTriggerInstance(Assert.Single(_bus.On(StormQueues.TriggerInstances)));
        Assert.Equal((tick.Id, "core.st2.IntervalTimer", Start.AddSeconds(23)), (fired.Id, fired.TriggerType, fired.OccurredAt));
        Assert.Equal("2026-12-02 10:00:30.000000", fired.Payload!["executed_at"]!.GetValue<string>());
        var next = Assert.Single(_bus.On(StormQueues.Timers));
        Assert.Equal((Start.AddSeconds(53), TimeSpan.FromSeconds(30)), (StormEvents.DecodeTimerTick(next).At, next.Delay));
    }

    [Fact]
    public async Task ASecondCopyOfATick_FiresNothingAndSchedulesNothing_ButARedeliveryOfTheFirstGoesOn()
    {
        var sensor = Sensor(("a", EveryThirtySeconds));
        await sensor.ScheduleAsync(CancellationToken.None);
        await sensor.ScheduleAsync(CancellationToken.None); // a second start: two copies of the same tick
        var copies = _bus.On(StormQueues.Timers).ToList();
        _bus.Clear();
        _time.Advance(copies[0].Delay);

        await sensor.HandleTickAsync(copies[0], CancellationToken.None);
        await sensor.HandleTickAsync(copies[1], CancellationToken.None);

        Assert.Single(_bus.On(StormQueues.TriggerInstances));
        Assert.Single(_bus.On(StormQueues.Timers)); // the copies collapsed into one chain
        _bus.Clear();

        // The first copy failing after its claim comes back as a redelivery: it fires (the same instance) and schedules again.
        await sensor.HandleTickAsync(copies[0] with { DeliveryCount = 2 }, CancellationToken.None);
        Assert.Equal(copies[0].Id, StormEvents.DecodeTriggerInstance(Assert.Single(_bus.On(StormQueues.TriggerInstances))).Id);
        Assert.Single(_bus.On(StormQueues.Timers));
    }

    [Fact]
    public async Task AFarOccurrence_IsScheduledOnlyOnceItComesWithinTheHorizon()
    {
        var sensor = Sensor(("later", "{type: core.st2.DateTimer, parameters: {date: '2026-12-22 10:00:00', timezone: UTC}}"));

        Assert.Equal(0, await sensor.ScheduleAsync(CancellationToken.None)); // 20 days off: no chain yet
        _time.Advance(new DateTimeOffset(2026, 12, 22, 8, 30, 0, TimeSpan.Zero) - _time.GetUtcNow());
        Assert.Equal(1, await sensor.ScheduleAsync(CancellationToken.None)); // an hourly round within 2 hours of it

        Assert.Equal(TimeSpan.FromMinutes(90), _bus.Take(StormQueues.Timers).Delay);
    }

    [Fact]
    public async Task AChainsNextOccurrenceBeyondTheLongestDelay_IsReachedInHops()
    {
        var sensor = Sensor(("rare", "{type: core.st2.IntervalTimer, parameters: {unit: days, delta: 20}}"));
        var first = DateTimeOffset.UnixEpoch.AddDays(Math.Ceiling((Start - DateTimeOffset.UnixEpoch).TotalDays / 20) * 20);
        _time.Advance(first - TimeSpan.FromMinutes(1) - _time.GetUtcNow());
        Assert.Equal(1, await sensor.ScheduleAsync(CancellationToken.None));
        var tick = _bus.Take(StormQueues.Timers);
        _time.Advance(tick.Delay);
        await sensor.HandleTickAsync(tick, CancellationToken.None);
        _bus.Take(StormQueues.TriggerInstances); // the first occurrence fired

        var hops = 0;
        while (true)
        {
            var message = _bus.Take(StormQueues.Timers);
            Assert.True(message.Delay <= TimerSensor.MaxDelay);
            _time.Advance(message.Delay);
            await sensor.HandleTickAsync(message, CancellationToken.None);
            if (_bus.On(StormQueues.TriggerInstances).Any())
            {
                break;
            }

            hops += message.Id.Contains(".hop-", StringComparison.Ordinal) ? 1 : 0;
        }

        Assert.Equal(3, hops); // 20 days in hops of at most 6
        Assert.Equal(first.AddDays(20), _time.GetUtcNow());
    }

    [Fact]
    public async Task ATickHandledLate_FiresItsOccurrenceOnce_AndTheNextIsAfterNow_NotEveryOneMissed()
    {
        var sensor = Sensor(("a", EveryThirtySeconds));
        await sensor.ScheduleAsync(CancellationToken.None);
        var tick = _bus.Take(StormQueues.Timers);

        _time.Advance(tick.Delay + TimeSpan.FromHours(1)); // the app was down for an hour
        await sensor.HandleTickAsync(tick, CancellationToken.None);

        Assert.Single(_bus.On(StormQueues.TriggerInstances));
        var next = StormEvents.DecodeTimerTick(Assert.Single(_bus.On(StormQueues.Timers)));
        Assert.InRange(next.At - _time.GetUtcNow(), TimeSpan.FromTicks(1), TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task ATickOfATimerNoRuleHasAnyMore_EndsItsChain()
    {
        var retired = StormEvents.Encode(new TimerTick("0123456789abcdef", Start), "timer-0123456789abcdef-1");

        await Sensor(("a", EveryThirtySeconds)).HandleTickAsync(retired, CancellationToken.None);

        Assert.Empty(_bus.On(StormQueues.Timers));
        Assert.Empty(_bus.On(StormQueues.TriggerInstances));
    }
}
