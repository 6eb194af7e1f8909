using Azure.Messaging.ServiceBus;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Functions;

/// <summary>The rules engine and action runner on Service Bus queues (built with -p:ServiceBusTriggers=true).</summary>
public sealed class ServiceBusFunctions(StormConsumers consumers, DurableFunctionsWorkflowEngine workflows)
{
    [Function("RulesEngineServiceBus")]
    public Task RulesEngineAsync([ServiceBusTrigger(StormQueues.TriggerInstances, Connection = "ServiceBus")] ServiceBusReceivedMessage message, CancellationToken cancellationToken) =>
        consumers.HandleTriggerInstanceAsync(ServiceBusMessageBus.FromServiceBusMessage(message), cancellationToken);

    [Function("ActionRunnerServiceBus")]
    public Task ActionRunnerAsync([ServiceBusTrigger(StormQueues.Executions, Connection = "ServiceBus")] ServiceBusReceivedMessage message,
        [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        workflows.Use(durable);
        return consumers.HandleExecutionRequestAsync(ServiceBusMessageBus.FromServiceBusMessage(message), cancellationToken);
    }
}
