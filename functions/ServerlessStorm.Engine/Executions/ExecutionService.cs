using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Executions;

/// <summary>No action with that ref is loaded.</summary>
public sealed class ActionNotFoundException(string actionRef) : Exception($"action '{actionRef}' does not exist");

/// <summary>
/// Requests executions: records each as <c>requested</c> in the audit (secret parameters masked), then puts it on
/// the executions queue with its real parameters for a runner to pick up.
/// </summary>
public sealed class ExecutionService(PackCatalog catalog, RunnerRegistry runners, Datastore.KeyValueService datastore, IAuditStore audit, IMessageBus bus, TimeProvider time)
{
    /// <summary>Runs an action with literal parameters, as <c>storm run</c> and the API do.</summary>
    public async Task<ExecutionRecord> RunAsync(string actionRef, JsonObject parameters, string? traceTag, CancellationToken cancellationToken)
    {
        var action = catalog.Actions.GetValueOrDefault(actionRef) ?? throw new ActionNotFoundException(actionRef);
        var shell = runners.TryGet(action.RunnerType, out var runner) ? runner.ShellCommandParameter : null;
        var keyValues = await datastore.SnapshotAsync(ParameterResolver.DatastoreKeys(action, parameters), cancellationToken);
        var resolved = ParameterResolver.Resolve(action, parameters, renderSupplied: true, keyValues, shell);
        var id = StormIds.New(time.GetUtcNow());
        return await RequestAsync(action, resolved, id, traceTag ?? id, null, null, cancellationToken);
    }

    /// <summary>
    /// Records and enqueues an execution with resolved parameters. Idempotent on <paramref name="executionId"/>: when
    /// the execution exists already, it is enqueued again only if no runner has picked it up yet.
    /// </summary>
    public async Task<ExecutionRecord> RequestAsync(
        ActionDefinition action,
        JsonObject parameters,
        string executionId,
        string traceTag,
        string? triggerInstanceId,
        string? ruleRef,
        CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var record = new ExecutionRecord
        {
            Id = executionId,
            ActionRef = action.Ref,
            RunnerType = action.RunnerType,
            TraceTag = traceTag,
            TriggerInstanceId = triggerInstanceId,
            RuleRef = ruleRef,
            Parameters = SecretMasker.MaskParameters(action, parameters),
            Status = ExecutionStatus.Requested,
            StartTimestamp = now,
        };
        record.History.Add(new StatusChange(ExecutionStatus.Requested, now));

        if (!await audit.TryCreateExecutionAsync(record, cancellationToken))
        {
            var existing = await audit.GetExecutionAsync(executionId, cancellationToken);
            if (existing is not null && existing.Status != ExecutionStatus.Requested)
            {
                return existing;
            }

            record = existing ?? record;
        }

        // Secret parameters, and any other value that carries one (a shell command's variables), cross the bus
        // sealed; the executor opens them just before the runner.
        var onTheBus = (JsonObject)parameters.DeepClone();
        foreach (var secret in action.Parameters.Values.Where(p => p.Secret && onTheBus[p.Name] is not null))
        {
            onTheBus[secret.Name] = datastore.SealValue(onTheBus[secret.Name]);
        }

        var secrets = SecretMasker.SecretValues(action, parameters);
        if (secrets.Count > 0)
        {
            onTheBus = (JsonObject)SealCarriers(onTheBus, secrets)!;
        }

        await bus.PublishAsync(StormQueues.Executions, StormEvents.Encode(new ExecutionRequest(executionId, action.Ref, onTheBus, traceTag), now), cancellationToken);
        return record;
    }

    private JsonNode? SealCarriers(JsonNode? node, IReadOnlyList<string> secrets) => node switch
    {
        JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, SealCarriers(p.Value, secrets)))),
        JsonArray array => new JsonArray([.. array.Select(i => SealCarriers(i, secrets))]),
        JsonValue v when v.TryGetValue<string>(out var text) && secrets.Any(s => text.Contains(s, StringComparison.Ordinal)) => datastore.SealValue(v),
        _ => node?.DeepClone(),
    };
}
