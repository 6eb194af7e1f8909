using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// What a pack of 10 timers costs a day: one simulated day of the real timer sensor (its ticks delivered when due,
/// the hourly re-arm and an instance start every hour each scheduling every timer again), counting the function runs
/// it makes, against the 5-second poll it replaced, and what they cost on Flex Consumption's on-demand meters.
/// </summary>
internal static class TimersBenchmark
{
    // Flex Consumption on-demand, pay-as-you-go (USD): per GB-s of execution and per million executions; the monthly
    // free grant (100,000 GB-s and 250,000 executions per subscription) is left out, so these are upper bounds.
    private const double PricePerGbSecond = 0.000026;
    private const double PricePerMillionExecutions = 0.40;
    private const double InstanceGb = 2.048; // instanceMemoryMB 2048, main.bicep's default
    private const double BilledSecondsPerRun = 1.0; // a run is billed at least 1 s on Flex Consumption

    public static async Task<int> RunAsync(string[] args)
    {
        var restartsPerDay = Args.Int(args, "--restarts", 24);
        Console.WriteLine($"one simulated day (UTC), the real TimerSensor; the hourly re-arm plus {restartsPerDay} instance starts schedule every timer again (copies collapse)");
        Console.WriteLine($"cost: runs x {BilledSecondsPerRun} s x {InstanceGb} GB x ${PricePerGbSecond}/GB-s + ${PricePerMillionExecutions}/million runs (on-demand, free grant left out)");
        Console.WriteLine();
        Console.WriteLine("| pack of 10 timers | occurrences fired | tick runs | re-arm runs | runs/day | $/day | 5 s poll runs/day | poll $/day |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        // Ten distinct timers each (equal parameters would be one timer, shared by its rules).
        var scenarios = new (string Name, string[] Triggers)[]
        {
            ("2 every minute, 3 every 5 min, 3 hourly, 1 daily, 1 weekly", [
                Cron("second: 0"), Cron("second: 30"),
                Cron("minute: '*/5', second: 1"), Cron("minute: '*/5', second: 2"), Cron("minute: '*/5', second: 3"),
                Cron("minute: 10"), Cron("minute: 20"), Cron("minute: 30"),
                Cron("hour: 2, minute: 0"), "{type: core.st2.IntervalTimer, parameters: {unit: weeks, delta: 1}}"]),
            ("10 every minute", [.. Enumerable.Range(0, 10).Select(i => Cron($"second: {i * 5}"))]),
            ("10 hourly", [.. Enumerable.Range(0, 10).Select(i => Cron($"minute: {i * 5}"))]),
        };
        foreach (var (name, triggers) in scenarios)
        {
            var day = await SimulateDayAsync(triggers, restartsPerDay);
            const int pollRuns = 24 * 60 * 60 / 5;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {day.Fired:N0} | {day.TickRuns:N0} | {day.RearmRuns:N0} | {day.TickRuns + day.RearmRuns:N0} | {Cost(day.TickRuns + day.RearmRuns):F3} | {pollRuns:N0} | {Cost(pollRuns):F3} |"));
        }

        return 0;
    }

    private static string Cron(string fields) => $"{{type: core.st2.CronTimer, parameters: {{{fields}}}}}";

    private static double Cost(long runs) => runs * BilledSecondsPerRun * InstanceGb * PricePerGbSecond + runs / 1e6 * PricePerMillionExecutions;

    private static async Task<(long Fired, long TickRuns, long RearmRuns)> SimulateDayAsync(string[] triggers, int restarts)
    {
        using var packs = new TempPacks().WithPack("timers");
        for (var i = 0; i < triggers.Length; i++)
        {
            packs.Write($"timers/rules/t{i}.yaml", $"name: t{i}\ntrigger: {triggers[i]}\naction: {{ref: core.noop}}\n");
        }

        var start = new DateTimeOffset(2026, 12, 7, 0, 0, 0, TimeSpan.Zero);
        var time = new ManualTimeProvider(start);
        var bus = new SimulatedBus(time);
        var services = InMemoryStorm.Compose(packs.Root, time, bus).AddLogging();
        await using var provider = services.BuildServiceProvider();
        var sensor = provider.GetRequiredService<TimerSensor>();

        long tickRuns = 0, rearmRuns = 0;
        var end = start.AddDays(1);
        var rearms = Enumerable.Range(0, 24).Select(h => start.AddHours(h))
            .Concat(Enumerable.Range(0, restarts).Select(i => start.AddMinutes(i * 24 * 60.0 / Math.Max(1, restarts) + 17)))
            .Order().ToList();
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var nextTick = bus.NextDue();
            var nextRearm = rearms.Count > 0 ? rearms[0] : DateTimeOffset.MaxValue;
            var at = nextTick is { } t && t < nextRearm ? t : nextRearm;
            if (at >= end)
            {
                break;
            }

            time.Advance(at - time.GetUtcNow());
            if (at == nextRearm)
            {
                rearms.RemoveAt(0);
                await sensor.ScheduleAsync(CancellationToken.None);
                rearmRuns++;
            }
            else
            {
                await sensor.HandleTickAsync(bus.TakeDue(), CancellationToken.None);
                tickRuns++;
            }
        }

        Console.Error.WriteLine($"  ({watch.ElapsedMilliseconds} ms to simulate)");
        return (bus.TriggerInstances, tickRuns, rearmRuns);
    }

    /// <summary>Delivers the timers queue's messages when they fall due; counts the trigger instances fired.</summary>
    private sealed class SimulatedBus(TimeProvider time) : IMessageBus
    {
        private readonly PriorityQueue<BusMessage, DateTimeOffset> _timers = new();

        public long TriggerInstances { get; private set; }

        public DateTimeOffset? NextDue() => _timers.TryPeek(out _, out var due) ? due : null;

        public BusMessage TakeDue() => _timers.Dequeue();

        public Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
        {
            if (queue == StormQueues.Timers)
            {
                _timers.Enqueue(message, time.GetUtcNow() + message.Delay);
            }
            else if (queue == StormQueues.TriggerInstances)
            {
                TriggerInstances++;
            }

            return Task.CompletedTask;
        }

        public Task<IAsyncDisposable> SubscribeAsync(string queue, BusHandler handler, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(string queue, int limit, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<int> ReplayDeadLettersAsync(string queue, string? messageId, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<QueueBacklog> GetBacklogAsync(string queue, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
