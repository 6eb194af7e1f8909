using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Hosting;

/// <summary>
/// Runs the engine's consumers in one process (the local stack): the rules engine on the trigger-instance queue,
/// the action executor on the executions queue, the timer sensor on the timers queue (its ticks scheduled at start
/// and again every <see cref="TimerRearmInterval"/>), and a sweep that times out inquiries past their time to live.
/// </summary>
public sealed class StormWorker(
    IMessageBus bus,
    StormConsumers consumers,
    TimerSensor timers,
    TimersQueueHandler timersQueue,
    InquiryService inquiries,
    Audit.AuditRetention retention,
    TimeProvider time,
    ILogger<StormWorker> logger) : BackgroundService
{
    /// <summary>How often every timer's next occurrence is scheduled again, mending a chain a crash broke (copies collapse).</summary>
    public static readonly TimeSpan TimerRearmInterval = TimeSpan.FromHours(1);

    public static readonly TimeSpan InquirySweepInterval = TimeSpan.FromSeconds(30);

    /// <summary>How often the audit's expired days are purged (the first time at start).</summary>
    public static readonly TimeSpan RetentionInterval = TimeSpan.FromDays(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var ruleSubscription = await bus.SubscribeAsync(StormQueues.TriggerInstances,
            (message, ct) => consumers.HandleTriggerInstanceAsync(message, ct), stoppingToken);
        await using var executionSubscription = await bus.SubscribeAsync(StormQueues.Executions,
            (message, ct) => consumers.HandleExecutionRequestAsync(message, ct), stoppingToken);
        await using var timerSubscription = await bus.SubscribeAsync(StormQueues.Timers, timersQueue.HandleAsync, stoppingToken);
        logger.EngineStarted();
        var sweep = SweepInquiriesAsync(stoppingToken);
        var purge = Task.Run(() => PurgeExpiredAsync(stoppingToken), CancellationToken.None);
        try
        {
            await RunTimersAsync(stoppingToken);
            await Task.Delay(Timeout.Infinite, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        finally
        {
            await sweep;
            await purge;
        }
    }

    // Days purged stay purged; the next round goes on from the oldest day left.
    private Task PurgeExpiredAsync(CancellationToken stoppingToken) =>
        RepeatAsync(RetentionInterval, retention.PurgeExpiredAsync, logger.AuditRetentionFailed, stoppingToken);

    private async Task SweepInquiriesAsync(CancellationToken stoppingToken)
    {
        using var ticker = new PeriodicTimer(InquirySweepInterval, time);
        try
        {
            while (await ticker.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await inquiries.ExpireDueAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.InquirySweepFailed(ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private Task RunTimersAsync(CancellationToken stoppingToken) =>
        timers.HasTimers
            // What is scheduled stays scheduled; the next round schedules what this one could not.
            ? RepeatAsync(TimerRearmInterval, timers.ScheduleAsync, logger.TimerSchedulingFailed, stoppingToken)
            : Task.CompletedTask;

    // Runs the work now and then every interval until the host stops; a round that fails is logged and the next goes on.
    private async Task RepeatAsync(TimeSpan interval, Func<CancellationToken, Task> work, Action<Exception> failed, CancellationToken stoppingToken)
    {
        using var ticker = new PeriodicTimer(interval, time);
        try
        {
            do
            {
                try
                {
                    await work(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    failed(ex);
                }
            }
            while (await ticker.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
