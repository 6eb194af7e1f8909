using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

public sealed class InMemoryAuditRetentionContractTests : AuditRetentionContractTests
{
    [Fact]
    public async Task TheMemoryAudit_CountsEveryDayItPurges()
    {
        var (audit, output) = await CreateAsync();
        await RecordDayAsync(audit, output, Expired, "counted");

        var day = Assert.Single((await Retention(audit, output).PurgeAsync(DateOnly.FromDateTime(Kept.UtcDateTime), null, null, CancellationToken.None)).Days);

        Assert.Equal((2, 2, 2, 1), (day.TriggerInstances, day.RuleEnforcements, day.Executions, day.OutputRows));
    }

    protected override Task<(IAuditStore Audit, IExecutionOutputStore Output)> CreateAsync() =>
        Task.FromResult<(IAuditStore, IExecutionOutputStore)>((new InMemoryAuditStore(), new InMemoryExecutionOutputStore()));
}

public sealed class AuditRetentionTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    private static AuditRetention Retention(IAuditStore audit, TimeProvider time) =>
        new(audit, new InMemoryExecutionOutputStore(), Options.Create(new StormOptions()), time, NullLogger<AuditRetention>.Instance);

    [Fact]
    public async Task Purge_BeforeADateInTheFuture_IsRefused_NamingTheDate()
    {
        var error = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            Retention(new InMemoryAuditStore(), new ManualTimeProvider(Now)).PurgeAsync(new DateOnly(2026, 12, 3), null, null, CancellationToken.None));

        Assert.Contains("2026-12-03 is in the future", error.Message);
    }

    [Fact]
    public async Task Purge_WhenTheBudgetIsSpent_StopsBetweenDays_AndSaysDaysAreLeft()
    {
        var audit = new InMemoryAuditStore();
        var time = new SteppingTimeProvider(Now, step: TimeSpan.FromSeconds(1));
        foreach (var day in new[] { 10, 11, 12 })
        {
            var at = new DateTimeOffset(2026, 10, day, 8, 0, 0, TimeSpan.Zero);
            await audit.TryCreateExecutionAsync(new ExecutionRecord
            {
                Id = StormIds.New(at), ActionRef = "core.noop", RunnerType = "noop", TraceTag = "t", Parameters = [],
                Status = ExecutionStatus.Succeeded, StartTimestamp = at, History = [],
            }, CancellationToken.None);
        }

        var retention = Retention(audit, time);
        var progress = new List<DateOnly>();

        // Each reading of the clock moves it a second: the budget of 2 s is spent after the first day.
        var first = await retention.PurgeAsync(new DateOnly(2026, 11, 1), TimeSpan.FromSeconds(2), new Progress(progress), CancellationToken.None);
        var rest = await retention.PurgeAsync(new DateOnly(2026, 11, 1), null, null, CancellationToken.None);

        Assert.True(first.More);
        Assert.Equal([new DateOnly(2026, 10, 10)], first.Days.Select(d => d.Day));
        Assert.Equal([new DateOnly(2026, 10, 10)], progress);
        Assert.False(rest.More);
        Assert.Equal([new DateOnly(2026, 10, 11), new DateOnly(2026, 10, 12)], rest.Days.Select(d => d.Day));
    }

    [Fact]
    public void DeliveryClaims_AreTheSendersIdOrTheTimersClaim_NeverAGeneratedId()
    {
        Assert.Equal(["gh-delivery-1"], AuditRetention.DeliveryClaims("gh-delivery-1", Triggers.CoreTriggers.Webhook));
        Assert.Empty(AuditRetention.DeliveryClaims(StormIds.New(Now), Triggers.CoreTriggers.Webhook));
        Assert.Equal([Triggers.TimerSensor.ClaimId("timer-x-1")], AuditRetention.DeliveryClaims("timer-x-1", Triggers.CoreTriggers.IntervalTimer));
    }

    private sealed class Progress(List<DateOnly> days) : IProgress<AuditDayPurge>
    {
        public void Report(AuditDayPurge value) => days.Add(value.Day);
    }

    // A clock whose every timestamp reading is a step later than the last.
    private sealed class SteppingTimeProvider(DateTimeOffset now, TimeSpan step) : TimeProvider
    {
        private long _ticks;

        public override DateTimeOffset GetUtcNow() => now;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Add(ref _ticks, step.Ticks);
    }
}
