using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Sensors;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Functions;

/// <summary>
/// What runs on a schedule. Timer rules and sensor polls do not: each occurrence or poll is a delayed message on the
/// timers queue (see <see cref="TimerSensor"/> and <see cref="SensorScheduler"/>; the queue functions handle them),
/// so an idle app has nothing to run. Here are only the hourly re-arming of both (mending a chain a crash broke), the
/// inquiry sweep, every ten minutes as StackStorm's garbage collector times inquiries out (its collection_interval,
/// 600 s), and the daily audit retention.
/// </summary>
public sealed class TimerFunctions(TimersQueueHandler timersQueue, InquiryService inquiries, DurableFunctionsWorkflowEngine workflows,
    ServerlessStorm.Engine.Audit.AuditRetention retention)
{
    public const string RearmSchedule = "0 0 * * * *";

    public const string InquirySweepSchedule = "0 */10 * * * *";

    /// <summary>Daily, at a quiet hour (UTC) and off the hour the re-arm takes.</summary>
    public const string RetentionSchedule = "0 17 3 * * *";

    [Function("InquiryTimeouts")]
    public Task InquiryTimeoutsAsync([TimerTrigger(InquirySweepSchedule)] TimerInfo timer, [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        workflows.Use(durable); // an expired approval ends its workflow task
        return inquiries.ExpireDueAsync(cancellationToken);
    }

    /// <summary>Deletes the audit's days older than <c>Storm:Retention</c> (a timer function runs on one instance at a time).</summary>
    [Function("AuditRetention")]
    public Task AuditRetentionAsync([TimerTrigger(RetentionSchedule)] TimerInfo timer, CancellationToken cancellationToken) => retention.PurgeExpiredAsync(cancellationToken);

    [Function("TimerRearm")]
    public Task TimerRearmAsync([TimerTrigger(RearmSchedule)] TimerInfo timer, CancellationToken cancellationToken) => timersQueue.ArmAsync(cancellationToken);
}

/// <summary>
/// Schedules every timer's next occurrence and every sensor's next poll when an instance starts (after a deployment
/// that changed the packs, at once).
/// </summary>
public sealed class TimerArming(TimersQueueHandler timersQueue, ILogger<TimerArming> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Not awaited: an instance starts serving whatever storage says; the hourly re-arm catches up on a failure.
        _ = Task.Run(async () =>
        {
            try
            {
                await timersQueue.ArmAsync(CancellationToken.None);
            }
            catch (Exception ex)
            {
                logger.TimerSchedulingAtStartFailed(ex);
            }
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
