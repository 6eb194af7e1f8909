using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Functions;

#if !SERVICE_BUS_TRIGGERS
/// <summary>
/// The rules engine and the action runner on Storage Queues. The Functions host learns the queue names from two app
/// settings (a trigger's queue is fixed before the app runs); the app refuses to start unless they are the names its
/// bus publishes to under <c>Storage:Prefix</c>. The host retries a failed message and moves it to
/// <c>{queue}-poison</c> after host.json's maxDequeueCount, the same convention the bus follows in <c>storm serve</c>.
/// </summary>
public sealed class QueueFunctions(StormConsumers consumers, TimersQueueHandler timers, StorageQueueMessageBus bus, DurableFunctionsWorkflowEngine workflows)
{
    /// <summary>The app setting naming the trigger-instance queue (<c>{prefix}-trigger-instances</c>).</summary>
    public const string TriggerInstancesQueueSetting = "STORM_TRIGGER_INSTANCES_QUEUE";

    /// <summary>The app setting naming the execution queue (<c>{prefix}-action-executions</c>).</summary>
    public const string ExecutionsQueueSetting = "STORM_ACTION_EXECUTIONS_QUEUE";

    /// <summary>The app setting naming the timers queue (<c>{prefix}-timers</c>).</summary>
    public const string TimersQueueSetting = "STORM_TIMERS_QUEUE";

    /// <summary>The bus queue each setting names.</summary>
    public static readonly IReadOnlyList<(string Setting, string BusQueue)> QueueSettings =
        [(TriggerInstancesQueueSetting, StormQueues.TriggerInstances), (ExecutionsQueueSetting, StormQueues.Executions), (TimersQueueSetting, StormQueues.Timers)];

    [Function("RulesEngine")]
    public async Task RulesEngineAsync([QueueTrigger("%" + TriggerInstancesQueueSetting + "%")] string message, long dequeueCount, CancellationToken cancellationToken) =>
        await consumers.HandleTriggerInstanceAsync(await bus.DecodeAsync(message, (int)dequeueCount, cancellationToken), cancellationToken);

    [Function("ActionRunner")]
    public async Task ActionRunnerAsync([QueueTrigger("%" + ExecutionsQueueSetting + "%")] string message, long dequeueCount, [DurableClient] DurableTaskClient durable, CancellationToken cancellationToken)
    {
        workflows.Use(durable); // an orquesta action starts its workflow
        await consumers.HandleExecutionRequestAsync(await bus.DecodeAsync(message, (int)dequeueCount, cancellationToken), cancellationToken);
    }

    [Function("TimerTicks")]
    public async Task TimerTicksAsync([QueueTrigger("%" + TimersQueueSetting + "%")] string message, long dequeueCount, CancellationToken cancellationToken) =>
        await timers.HandleAsync(await bus.DecodeAsync(message, (int)dequeueCount, cancellationToken), cancellationToken);
}

/// <summary>Start-up check that each queue setting names the queue the bus publishes to under the configured prefix.</summary>
internal sealed class QueueTriggerNames(IConfiguration configuration) : IValidateOptions<AzureStorageOptions>
{
    public ValidateOptionsResult Validate(string? name, AzureStorageOptions options)
    {
        var wrong = QueueFunctions.QueueSettings
            .Select(q => (q.Setting, Expected: options.Names.Queue(q.BusQueue), Actual: configuration[q.Setting]))
            .Where(q => q.Actual != q.Expected)
            .Select(q => $"{q.Setting} is {(string.IsNullOrEmpty(q.Actual) ? "not set" : $"'{q.Actual}'")} but must be '{q.Expected}'")
            .ToList();
        return wrong.Count == 0 ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"the queue triggers would not listen where the bus publishes (Storage:Prefix '{options.Prefix}'): {string.Join("; ", wrong)}");
    }
}
#endif
