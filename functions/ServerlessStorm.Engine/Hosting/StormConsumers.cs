using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Hosting;

/// <summary>
/// What every host runs for a message on the engine's two queues: decode it, hand it to the rules engine or the action
/// executor, and, when this delivery is the last the bus makes before dead-lettering it, mark its trigger instance or
/// execution in the audit with the reason, so the audit shows why the work stopped and how to resume it.
/// </summary>
public sealed class StormConsumers(RulesEngine rules, ActionExecutor executor, IAuditStore audit, IOptions<BusOptions> bus, TimeProvider time, ILogger<StormConsumers> logger)
{
    public async Task HandleTriggerInstanceAsync(BusMessage message, CancellationToken cancellationToken)
    {
        var instance = StormEvents.DecodeTriggerInstance(message);
        // Continues the trace of whatever sent it; a redelivery carries the same context, so it joins the same trace.
        using var span = StormTracing.Start(StormTracing.RulesEvaluate, ActivityKind.Consumer, instance.Trace)
            ?.SetTag(StormTracing.TriggerType, instance.TriggerType)
            .SetTag(StormTracing.TriggerInstanceId, instance.Id)
            .SetTag(StormTracing.TraceTag, instance.TraceTag)
            .SetTag(StormTracing.DeliveryCount, message.DeliveryCount);
        try
        {
            await rules.HandleAsync(instance, cancellationToken);
        }
        catch (Exception ex) when (Failed(span, ex) && IsLastDelivery(message, ex))
        {
            StormMetrics.DeadLettered(StormQueues.TriggerInstances);
            await MarkAsync(() => audit.UpdateTriggerInstanceStatusAsync(instance.Id, instance.OccurredAt, TriggerInstanceStatus.ProcessingFailed,
                DeadLettered(message, ex, instance.Id, StormQueues.TriggerInstances), CancellationToken.None), instance.Id);
            throw;
        }
    }

    /// <param name="message">The execution request.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <param name="takeOver">See <see cref="ActionExecutor.HandleAsync"/>.</param>
    public async Task HandleExecutionRequestAsync(BusMessage message, CancellationToken cancellationToken, bool takeOver = false)
    {
        var request = StormEvents.DecodeExecutionRequest(message);
        var now = time.GetUtcNow();
        if (request.SentAt is { } sent && sent < now)
        {
            StormMetrics.ExecutionQueued(request.ActionRef, now - sent);
            // From the request's sending to its handling, in the same trace.
            StormTracing.Start(StormTracing.ExecutionQueueWait, ActivityKind.Consumer, request.Trace, sent)
                ?.SetTag(StormTracing.ExecutionId, request.ExecutionId).SetTag(StormTracing.TraceTag, request.TraceTag).SetEndTime(now.UtcDateTime).Dispose();
        }

        using var span = StormTracing.Start(StormTracing.ExecutionRun, ActivityKind.Consumer, request.Trace)
            ?.SetTag(StormTracing.ActionRef, request.ActionRef)
            .SetTag(StormTracing.ExecutionId, request.ExecutionId)
            .SetTag(StormTracing.TraceTag, request.TraceTag)
            .SetTag(StormTracing.DeliveryCount, message.DeliveryCount);
        try
        {
            await executor.HandleAsync(request, cancellationToken, takeOver);
        }
        catch (Exception ex) when (Failed(span, ex) && IsLastDelivery(message, ex))
        {
            StormMetrics.DeadLettered(StormQueues.Executions);
            await MarkAsync(async () =>
            {
                // It keeps its status: a replay runs it from where it stopped.
                if (await audit.GetExecutionAsync(request.ExecutionId, CancellationToken.None) is { } record && !ExecutionStatus.IsTerminal(record.Status))
                {
                    record.Error = DeadLettered(message, ex, request.ExecutionId, StormQueues.Executions);
                    await audit.TryUpdateExecutionAsync(record, CancellationToken.None);
                }
            }, request.ExecutionId);
            throw;
        }
    }

    // Marks the span failed and lets the exception go on (used as a filter, so it never catches). Only the type: a
    // message may quote what it failed on, and the audit already has the reason.
    private static bool Failed(Activity? span, Exception error)
    {
        StormTracing.Fail(span, error.GetType().Name);
        return true;
    }

    private bool IsLastDelivery(BusMessage message, Exception error) =>
        error is not OperationCanceledException && (error is PoisonMessageException || message.DeliveryCount >= bus.Value.MaxDeliveryCount);

    private string DeadLettered(BusMessage message, Exception error, string id, string queue) =>
        $"dead-lettered on {queue} at {time.GetUtcNow():u}: {DeadLetterReason.Of(error, message.DeliveryCount)} (storm dead-letter replay {id} runs it again)";

    // The audit may be what failed: the dead letter keeps the reason either way.
    private async Task MarkAsync(Func<Task> mark, string id)
    {
        try
        {
            await mark();
        }
        catch (Exception ex)
        {
            logger.AuditDeadLetterNotMarked(id, ExceptionCause.Of(ex));
        }
    }
}
