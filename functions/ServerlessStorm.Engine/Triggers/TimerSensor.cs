using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Triggers;

/// <summary>
/// The timer sensor, without a poll: each timer's next occurrence is a delayed message on the timers queue (a
/// scheduled message on Service Bus), and handling it fires the occurrence's trigger instance and schedules the one
/// after. Nothing runs between occurrences, so an idle Function app scales to zero.
/// <para>
/// Exactly once across instances: a trigger instance's id is the timer and the occurrence, so a tick handled twice
/// fires one instance (its executions' ids derive from it). Ticks of one occurrence can exist twice — every start
/// schedules each timer's next occurrence again, so a chain broken by a crash is mended — and the copies are
/// collapsed when they are handled: only the first to claim the occurrence schedules the next.
/// </para>
/// </summary>
public sealed class TimerSensor
{
    /// <summary>The longest a tick is delayed (Storage Queues hide a message for at most 7 days); a later occurrence is reached in hops.</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromDays(6);

    /// <summary>
    /// How far ahead scheduling reaches: an occurrence further off is scheduled by its chain, or by a later round of
    /// scheduling (hosts schedule hourly), so every round does not start another chain towards a far occurrence.
    /// </summary>
    public static readonly TimeSpan ScheduleHorizon = TimeSpan.FromHours(2);

    private readonly Dictionary<string, (string Type, JsonObject Parameters, TimerSchedule Schedule)> _timers = new(StringComparer.Ordinal);
    private readonly TriggerDispatcher _dispatcher;
    private readonly IMessageBus _bus;
    private readonly IAuditStore _audit;
    private readonly TimeProvider _time;
    private readonly ILogger<TimerSensor> _logger;

    public TimerSensor(PackCatalog catalog, TriggerDispatcher dispatcher, IMessageBus bus, IAuditStore audit, TimeProvider time, ILogger<TimerSensor> logger)
    {
        (_dispatcher, _bus, _audit, _time, _logger) = (dispatcher, bus, audit, time, logger);
        foreach (var rule in catalog.Rules.Where(r => r.Enabled && CoreTriggers.Timers.Contains(r.TriggerType)))
        {
            // One timer per distinct type and parameters, however many rules share it; its key names both.
            var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(rule.TriggerType + rule.TriggerParameters.ToJsonString())).AsSpan(0, 8));
            _timers.TryAdd(key, (rule.TriggerType, rule.TriggerParameters, TimerSchedule.Parse(rule.TriggerType, rule.TriggerParameters)));
        }
    }

    public bool HasTimers => _timers.Count > 0;

    /// <summary>
    /// Schedules every timer's next occurrence within <see cref="ScheduleHorizon"/> (at a host's start, and hourly to
    /// mend a broken chain); returns how many.
    /// </summary>
    public async Task<int> ScheduleAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var scheduled = 0;
        foreach (var (key, timer) in _timers)
        {
            if (timer.Schedule.NextAfter(now) is { } next && next - now <= ScheduleHorizon)
            {
                await PublishTickAsync(new TimerTick(key, next), now, cancellationToken);
                scheduled++;
            }
        }

        return scheduled;
    }

    /// <summary>Handles a tick: fires its occurrence and schedules the next, or waits on when it was woken early.</summary>
    public async Task HandleTickAsync(BusMessage message, CancellationToken cancellationToken)
    {
        var tick = StormEvents.DecodeTimerTick(message);
        if (!_timers.TryGetValue(tick.Timer, out var timer))
        {
            // Its rule was removed, disabled or changed since the tick was scheduled: the chain ends here.
            _logger.TimerChainEnded(tick.Timer, tick.At);
            return;
        }

        var now = _time.GetUtcNow();
        if (tick.At - now > TimeSpan.FromSeconds(1))
        {
            await PublishTickAsync(tick, now, cancellationToken); // a hop towards an occurrence beyond MaxDelay
            return;
        }

        // The first copy of this occurrence's tick to claim it goes on; a later copy is a duplicate and stops, so
        // duplicates never multiply. A redelivery of the claiming copy (it failed after claiming) goes on too.
        // The store keeps the first value written under the key; a value of this copy's own (now, give or take a
        // random part of a day, kept to the millisecond stores hold) tells whether that was ours, however close
        // together the copies come.
        var claim = Truncate(now).AddMilliseconds(Random.Shared.Next(ClaimSpreadMilliseconds));
        if (await _audit.FirstAcceptedAsync(ClaimId(tick.Id), claim, cancellationToken) != claim && message.DeliveryCount <= 1)
        {
            _logger.TimerTickAlreadyHandled(tick.Id);
            return;
        }

        if (timer.Schedule.NextAfter(tick.At > now ? tick.At : now) is { } next)
        {
            await PublishTickAsync(new TimerTick(tick.Timer, next), now, cancellationToken);
        }

        // An occurrence starts a trace of its own, as a webhook does.
        var instance = Instance(tick, timer.Type, timer.Parameters);
        using var span = Diagnostics.StormTracing.Start(Diagnostics.StormTracing.TimerFire, System.Diagnostics.ActivityKind.Internal, parent: null)
            ?.SetTag(Diagnostics.StormTracing.TriggerType, timer.Type)
            .SetTag(Diagnostics.StormTracing.TriggerInstanceId, instance.Id)
            .SetTag(Diagnostics.StormTracing.TraceTag, instance.TraceTag);
        await _dispatcher.DispatchAsync(instance, cancellationToken);
    }

    /// <summary>The id under which the first copy of an occurrence's tick claims it (its trigger instance's id is the tick's).</summary>
    public static string ClaimId(string triggerInstanceId) => $"{triggerInstanceId}.tick";

    private Task PublishTickAsync(TimerTick tick, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var delay = tick.At - now;
        // A hop short of a far occurrence is a message of its own (duplicate detection would drop it under the tick's id).
        var (id, wait) = delay > MaxDelay ? ($"{tick.Id}.hop-{now.ToUnixTimeSeconds()}", MaxDelay) : (tick.Id, delay);
        return _bus.PublishAsync(StormQueues.Timers, StormEvents.Encode(tick, id) with { Delay = wait > TimeSpan.Zero ? wait : TimeSpan.Zero }, cancellationToken);
    }

    private static TriggerInstance Instance(TimerTick tick, string type, JsonObject parameters)
    {
        var payload = new JsonObject
        {
            ["executed_at"] = tick.At.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture),
            ["schedule"] = parameters.DeepClone(),
        };
        return new TriggerInstance(tick.Id, type, (JsonObject)parameters.DeepClone(), payload, tick.At, tick.Id);
    }

    private const int ClaimSpreadMilliseconds = 24 * 60 * 60 * 1000;

    // Stores keep times to the millisecond at least, so a claim reads back equal to what was written.
    private static DateTimeOffset Truncate(DateTimeOffset time) => new(time.UtcTicks - time.UtcTicks % TimeSpan.TicksPerMillisecond, TimeSpan.Zero);
}

/// <summary>One occurrence of a timer: its key and when it falls due. Its id is the trigger instance's it fires.</summary>
public sealed record TimerTick(string Timer, DateTimeOffset At)
{
    public string Id => $"timer-{Timer}-{At.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}";
}
