using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Testing;

public static class TraceExtensions
{
    /// <summary>The webhook's trigger instance in a trace (which also holds the action triggers its executions emit).</summary>
    public static TriggerInstanceRecord Webhook(this AuditTrace trace) =>
        trace.TriggerInstances.Single(t => t.TriggerType == CoreTriggers.Webhook);

    public static bool HasProcessedWebhook(this AuditTrace trace) =>
        trace.TriggerInstances.Any(t => t.TriggerType == CoreTriggers.Webhook && t.Status == TriggerInstanceStatus.Processed);
}
