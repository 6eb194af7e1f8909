using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Hosting;

/// <summary>
/// Runs the engine's consumers in one process (the local stack): the rules engine on the trigger-instance queue,
/// the action executor on the executions queue, the timer sensor ticking once a second, and a sweep that times out
/// inquiries past their time to live.
/// </summary>
public sealed partial class StormWorker(
    IMessageBus bus,
    StormConsumers consumers,
    TimerSensor timers,
    InquiryService inquiries,
    TimeProvider time,
    ILogger<StormWorker> logger) : BackgroundService
{
    public static readonly TimeSpan TimerTick = TimeSpan.FromSeconds(1);

    public static readonly TimeSpan InquirySweepInterval = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var ruleSubscription = await bus.SubscribeAsync(StormQueues.TriggerInstances,
            (message, ct) => consumers.HandleTriggerInstanceAsync(message, ct), stoppingToken);
        await using var executionSubscription = await bus.SubscribeAsync(StormQueues.Executions,
            (message, ct) => consumers.HandleExecutionRequestAsync(message, ct), stoppingToken);
        LogStarted(logger);
        var sweep = SweepInquiriesAsync(stoppingToken);
        try
        {
            await RunTimersAsync(stoppingToken);
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
            await Task.Delay(Timeout.Infinite, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            return;
        }

        using var ticker = new PeriodicTimer(TimerTick, time);
        var last = time.GetUtcNow();
        try
        {
            while (await ticker.WaitForNextTickAsync(stoppingToken))
            {
                var now = time.GetUtcNow();
                try
                {
                    await timers.FireAsync(last, now, stoppingToken);
                    last = now;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The window is kept, so the next tick fires what this one could not.
                    LogTimerFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Rules engine, action runners and timers are running")]
    private static partial void LogStarted(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Timing out expired inquiries failed; the next sweep tries again")]
    private static partial void LogSweepFailed(ILogger logger, Exception error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Timer sensor tick failed; it will retry on the next tick")]
    private static partial void LogTimerFailed(ILogger logger, Exception error);
}
