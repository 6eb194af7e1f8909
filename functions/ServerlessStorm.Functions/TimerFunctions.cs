using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Functions;

/// <summary>
/// The timer sensor: every five seconds, fires the timer rules that fell due since the last run. And once a minute,
/// inquiries past their time to live are timed out.
/// </summary>
public sealed class TimerFunctions(TimerSensor timers, InquiryService inquiries, DurableFunctionsWorkflowEngine workflows, TimeProvider time)
{
    public const string Schedule = "*/5 * * * * *";

    public const string InquirySweepSchedule = "0 * * * * *";

    [Function("InquiryTimeouts")]
    public Task InquiryTimeoutsAsync([TimerTrigger(InquirySweepSchedule)] TimerInfo timer, [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        workflows.Use(durable); // an expired approval ends its workflow task
        return inquiries.ExpireDueAsync(cancellationToken);
    }

    [Function("TimerSensor")]
    public async Task TimerSensorAsync([TimerTrigger(Schedule)] TimerInfo timer, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var last = timer.ScheduleStatus?.Last is { } l && l != default ? new DateTimeOffset(l.ToUniversalTime(), TimeSpan.Zero) : now.AddSeconds(-5);
        await timers.FireAsync(last, now, cancellationToken);
    }
}
