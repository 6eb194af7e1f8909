using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Engine.Triggers;

/// <summary>Where every sensor hands its trigger instances: recorded in the audit first, then put on the bus.</summary>
public sealed class TriggerDispatcher(IAuditStore audit, IMessageBus bus)
{
    public async Task DispatchAsync(TriggerInstance instance, CancellationToken cancellationToken)
    {
        // The message carries this span's context: the rules engine's span continues it.
        using var span = Diagnostics.StormTracing.Source.StartActivity(Diagnostics.StormTracing.TriggerDispatch, System.Diagnostics.ActivityKind.Producer)
            ?.SetTag(Diagnostics.StormTracing.TriggerType, instance.TriggerType)
            .SetTag(Diagnostics.StormTracing.TriggerInstanceId, instance.Id)
            .SetTag(Diagnostics.StormTracing.TraceTag, instance.TraceTag);
        await audit.RecordTriggerInstanceAsync(new TriggerInstanceRecord
        {
            Id = instance.Id,
            TriggerType = instance.TriggerType,
            TriggerParameters = instance.TriggerParameters,
            Payload = instance.Payload,
            OccurredAt = instance.OccurredAt,
            TraceTag = instance.TraceTag,
            Status = TriggerInstanceStatus.Pending,
            User = instance.User,
        }, cancellationToken);
        await bus.PublishAsync(StormQueues.TriggerInstances, StormEvents.Encode(instance), cancellationToken);
        Diagnostics.StormMetrics.TriggerAccepted(instance.TriggerType);
    }
}
