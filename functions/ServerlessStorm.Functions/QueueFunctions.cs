using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Functions;

#if !SERVICE_BUS_TRIGGERS
/// <summary>
/// The rules engine and the action runner on Storage Queues. The queue names are those the Storage Queue bus
/// publishes to with the default prefix; the Functions host retries a failed message and moves it to
/// <c>{queue}-poison</c> after host.json's maxDequeueCount, the same convention the bus follows in <c>storm serve</c>.
/// </summary>
public sealed class QueueFunctions(StormConsumers consumers, StorageQueueMessageBus bus, DurableFunctionsWorkflowEngine workflows)
{
    public const string TriggerInstancesQueue = "storm-" + StormQueues.TriggerInstances;
    public const string ExecutionsQueue = "storm-" + StormQueues.Executions;

    [Function("RulesEngine")]
    public async Task RulesEngineAsync([QueueTrigger(TriggerInstancesQueue)] string message, long dequeueCount, CancellationToken cancellationToken) =>
        await consumers.HandleTriggerInstanceAsync(await bus.DecodeAsync(message, (int)dequeueCount, cancellationToken), cancellationToken);

    [Function("ActionRunner")]
    public async Task ActionRunnerAsync([QueueTrigger(ExecutionsQueue)] string message, long dequeueCount, [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        workflows.Use(durable); // an orquesta action starts its workflow
        await consumers.HandleExecutionRequestAsync(await bus.DecodeAsync(message, (int)dequeueCount, cancellationToken), cancellationToken);
    }
}
#endif
