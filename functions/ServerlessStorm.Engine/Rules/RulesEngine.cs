using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Rules;

/// <summary>
/// Matches each trigger instance against the rules bound to its trigger (through the compiled
/// <see cref="IRuleEvaluator"/>) and enforces the ones that match: renders the action parameters from the payload and
/// requests the execution. Every enforcement, and every failure to enforce, is recorded with its reason.
/// </summary>
public sealed class RulesEngine(
    PackCatalog catalog,
    IRuleEvaluator rules,
    RunnerRegistry runners,
    ExecutionService executions,
    Datastore.KeyValueService datastore,
    IAuditStore audit,
    TimeProvider time,
    Microsoft.Extensions.Options.IOptions<Security.AuthOptions> auth,
    ILogger<RulesEngine> logger,
    Packs.PackConfigService? packConfigs = null)
{
    public async Task HandleAsync(TriggerInstance instance, CancellationToken cancellationToken)
    {
        // Matching does not wait for the "processing" mark to be stored; it is in before the outcome is written.
        var processing = audit.UpdateTriggerInstanceStatusAsync(instance.Id, instance.OccurredAt, TriggerInstanceStatus.Processing, null, cancellationToken);
        try
        {
            var matched = rules.Evaluate(instance.TriggerType, instance.TriggerParameters, instance.Payload);
            foreach (var rule in matched)
            {
                Diagnostics.StormMetrics.RuleMatched(rule.Ref);
                await EnforceAsync(rule, instance, cancellationToken);
            }

            logger.RulesEvaluated(instance.Id, matched.Count);
            await processing;
            await audit.UpdateTriggerInstanceStatusAsync(instance.Id, instance.OccurredAt, TriggerInstanceStatus.Processed, null, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await processing.ContinueWith(_ => { }, TaskScheduler.Default);
            await audit.UpdateTriggerInstanceStatusAsync(instance.Id, instance.OccurredAt, TriggerInstanceStatus.ProcessingFailed, ex.Message, cancellationToken);
            throw;
        }
    }

    private async Task EnforceAsync(RuleDefinition rule, TriggerInstance instance, CancellationToken cancellationToken)
    {
        using var span = Diagnostics.StormTracing.Source.StartActivity(Diagnostics.StormTracing.RuleEnforce)
            ?.SetTag(Diagnostics.StormTracing.RuleRef, rule.Ref)
            .SetTag(Diagnostics.StormTracing.ActionRef, rule.ActionRef)
            .SetTag(Diagnostics.StormTracing.TriggerInstanceId, instance.Id)
            .SetTag(Diagnostics.StormTracing.TraceTag, instance.TraceTag);
        var now = time.GetUtcNow();
        if (!catalog.Actions.TryGetValue(rule.ActionRef, out var action))
        {
            await RecordFailureAsync(rule, instance, $"action '{rule.ActionRef}' does not exist", now, cancellationToken);
            return;
        }

        var shellParameter = runners.TryGet(action.RunnerType, out var runner) ? runner.ShellCommandParameter : null;
        var executionId = StormIds.ForRuleEnforcement(instance.Id, rule.Ref, instance.OccurredAt);
        var keyValues = await datastore.SnapshotAsync(ParameterResolver.DatastoreKeys(action, rule.ActionParameters.Values), executionId, auth.Value.SystemUser, cancellationToken);
        System.Text.Json.Nodes.JsonObject parameters;
        try
        {
            var context = await ParameterResolver.ContextAsync(packConfigs, catalog, action, executionId, auth.Value.SystemUser, cancellationToken);
            parameters = ParameterResolver.ForRule(action, rule, instance.Payload, shellParameter, keyValues, context);
        }
        catch (ParameterValidationException ex)
        {
            await RecordFailureAsync(rule, instance, ex.Message, now, cancellationToken);
            return;
        }
        catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
        {
            await RecordFailureAsync(rule, instance, $"the action parameters could not be rendered: {ex.Message}", now, cancellationToken);
            return;
        }

        // As in StackStorm, a rule's action runs as the system user; who sent the trigger instance is on its record.
        span?.SetTag(Diagnostics.StormTracing.ExecutionId, executionId);
        await executions.RequestAsync(action, parameters, executionId, instance.TraceTag, instance.Id, rule.Ref, cancellationToken, user: auth.Value.SystemUser);
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance.Id, rule.Ref, executionId,
            RuleEnforcementRecord.Succeeded, null, now, instance.TraceTag, auth.Value.SystemUser, instance.OccurredAt), cancellationToken);
    }

    private async Task RecordFailureAsync(RuleDefinition rule, TriggerInstance instance, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        Diagnostics.StormTracing.Fail(System.Diagnostics.Activity.Current, "the rule could not be enforced (the rule enforcement record has the reason)");
        logger.RuleEnforcementFailed(rule.Ref, instance.Id, reason);
        Diagnostics.StormMetrics.EnforcementFailed(rule.Ref);
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance.Id, rule.Ref, null,
            RuleEnforcementRecord.Failed, reason, now, instance.TraceTag, auth.Value.SystemUser, instance.OccurredAt), cancellationToken);
    }
}
