using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
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
public sealed partial class StormWorker(
    IMessageBus bus,
    StormConsumers consumers,
    TimerSensor timers,
    InquiryService inquiries,
    TimeProvider time,
    ILogger<StormWorker> logger) : BackgroundService
{
    /// <summary>How often every timer's next occurrence is scheduled again, mending a chain a crash broke (copies collapse).</summary>
    public static readonly TimeSpan TimerRearmInterval = TimeSpan.FromHours(1);

    public static readonly TimeSpan InquirySweepInterval = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var ruleSubscription = await bus.SubscribeAsync(StormQueues.TriggerInstances,
            (message, ct) => consumers.HandleTriggerInstanceAsync(message, ct), stoppingToken);
        await using var executionSubscription = await bus.SubscribeAsync(StormQueues.Executions,
            (message, ct) => consumers.HandleExecutionRequestAsync(message, ct), stoppingToken);
        await using var timerSubscription = await bus.SubscribeAsync(StormQueues.Timers, timers.HandleTickAsync, stoppingToken);
        LogStarted(logger);
        var sweep = SweepInquiriesAsync(stoppingToken);
        try
        {
            await RunTimersAsync(stoppingToken);
            await Task.Delay(Timeout.Infinite, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        finally
        {
            await sweep;
        }
    }

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
                    LogSweepFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task RunTimersAsync(CancellationToken stoppingToken)
    {
        if (!timers.HasTimers)
        {
            return;
        }

        using var rearm = new PeriodicTimer(TimerRearmInterval, time);
        try
        {
            do
            {
                try
                {
                    await timers.ScheduleAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // What is scheduled stays scheduled; the next round schedules what this one could not.
                    LogTimerFailed(logger, ex);
                }
            }
            while (await rearm.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Rules engine, action runners and timers are running")]
    private static partial void LogStarted(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Timing out expired inquiries failed; the next sweep tries again")]
    private static partial void LogSweepFailed(ILogger logger, Exception error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Scheduling the timers' next occurrences failed; the next round tries again")]
    private static partial void LogTimerFailed(ILogger logger, Exception error);
}
