using Azure.Messaging.ServiceBus;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Functions;

#if SERVICE_BUS_TRIGGERS
/// <summary>
/// The rules engine and action runner on Service Bus queues (the build <c>azd up</c> deploys: ServiceBusTriggers=true).
/// Messages are settled here, as <c>storm serve</c>'s processor settles them: completed, abandoned for redelivery,
/// or dead-lettered with the reason on the last delivery (the queue's maxDeliveryCount, which the Bicep sets to
/// <see cref="BusOptions.MaxDeliveryCount"/>) or at once when unreadable.
/// </summary>
public sealed class ServiceBusFunctions(StormConsumers consumers, TimersQueueHandler timers, DurableFunctionsWorkflowEngine workflows, IOptions<BusOptions> bus, ILogger<ServiceBusFunctions> logger)
{
    /// <summary>The app settings prefix of the namespace connection (<c>ServiceBus__fullyQualifiedNamespace</c>, …).</summary>
    public const string Connection = "ServiceBus";

    [Function("RulesEngineServiceBus")]
    public Task RulesEngineAsync(
        [ServiceBusTrigger(StormQueues.TriggerInstances, Connection = Connection, AutoCompleteMessages = false)] ServiceBusReceivedMessage message,
        ServiceBusMessageActions actions, CancellationToken cancellationToken) =>
        HandleAsync(message, actions, StormQueues.TriggerInstances, consumers.HandleTriggerInstanceAsync, cancellationToken);

    [Function("ActionRunnerServiceBus")]
    public Task ActionRunnerAsync(
        [ServiceBusTrigger(StormQueues.Executions, Connection = Connection, AutoCompleteMessages = false)] ServiceBusReceivedMessage message,
        ServiceBusMessageActions actions, [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        workflows.Use(durable); // an orquesta action starts its workflow
        return HandleAsync(message, actions, StormQueues.Executions, (m, ct) => consumers.HandleExecutionRequestAsync(m, ct), cancellationToken);
    }

    [Function("TimerTicksServiceBus")]
    public Task TimerTicksAsync(
        [ServiceBusTrigger(StormQueues.Timers, Connection = Connection, AutoCompleteMessages = false)] ServiceBusReceivedMessage message,
        ServiceBusMessageActions actions, CancellationToken cancellationToken) =>
        HandleAsync(message, actions, StormQueues.Timers, timers.HandleAsync, cancellationToken);

    // Settled through the host's message actions, by the same code as storm serve's processor.
    private Task HandleAsync(ServiceBusReceivedMessage message, ServiceBusMessageActions actions, string queue, BusHandler handler, CancellationToken cancellationToken) =>
        ServiceBusMessageBus.HandleAsync(message, queue, new ServiceBusSettlement(
                () => actions.CompleteMessageAsync(message, CancellationToken.None),
                () => actions.AbandonMessageAsync(message, null, CancellationToken.None),
                (reason, description) => actions.DeadLetterMessageAsync(message, null, reason, description, CancellationToken.None)),
            handler, bus.Value.MaxDeliveryCount, logger, cancellationToken);
}
#endif
