using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Executions;

/// <summary>
/// Lets results flow back into rules: a finished execution emits <c>core.st2.generic.actiontrigger</c> with
/// StackStorm's payload — when an enabled rule listens for it, so executions nobody chains on cost no extra audit
/// writes — and an action's <c>notify</c> settings emit <c>core.st2.generic.notifytrigger</c> per route.
/// Trigger-instance ids come from the execution, so announcing twice (after a redelivery) enforces rules once.
/// Parameters and results are the audit's, so secrets are already masked.
/// </summary>
public sealed class CompletionAnnouncer(PackCatalog catalog, TriggerDispatcher dispatcher, ILogger<CompletionAnnouncer> logger)
{
    private readonly bool _actionTriggerHasListeners = catalog.RulesFor(CoreTriggers.ActionTrigger, null).Any(r => r.Enabled);
    private readonly bool _inquiryTriggerHasListeners = catalog.RulesFor(CoreTriggers.Inquiry, null).Any(r => r.Enabled);

    /// <summary>An inquiry started waiting: emits <c>core.st2.generic.inquiry</c> (id and route) when a rule listens.</summary>
    public async Task AnnounceInquiryAsync(ExecutionRecord inquiry, CancellationToken cancellationToken)
    {
        if (_inquiryTriggerHasListeners)
        {
            var payload = new JsonObject { ["id"] = inquiry.Id, ["route"] = inquiry.Result?["route"]?.DeepClone() ?? "" };
            var at = inquiry.History.LastOrDefault()?.At ?? inquiry.StartTimestamp;
            await dispatcher.DispatchAsync(new TriggerInstance($"inquiry-{inquiry.Id}", CoreTriggers.Inquiry, null, payload, at, inquiry.TraceTag), cancellationToken);
        }
    }

    public async Task AnnounceAsync(ActionDefinition? action, ExecutionRecord execution, CancellationToken cancellationToken)
    {
        var end = execution.EndTimestamp ?? execution.StartTimestamp;
        var payload = new JsonObject
        {
            ["execution_id"] = execution.Id,
            ["status"] = execution.Status,
            ["start_timestamp"] = ApiViews.Time(execution.StartTimestamp),
            ["end_timestamp"] = ApiViews.Time(end),
            ["action_name"] = action?.Name ?? execution.ActionRef[(execution.ActionRef.IndexOf('.', StringComparison.Ordinal) + 1)..],
            ["action_ref"] = execution.ActionRef,
            ["runner_ref"] = execution.RunnerType,
            ["parameters"] = execution.Parameters.DeepClone(),
            ["result"] = execution.Result?.DeepClone() ?? new JsonObject(),
        };
        if (_actionTriggerHasListeners)
        {
            await dispatcher.DispatchAsync(new TriggerInstance($"actiontrigger-{execution.Id}", CoreTriggers.ActionTrigger, null, payload, end, execution.TraceTag), cancellationToken);
        }

        foreach (var setting in action?.Notify ?? [])
        {
            var applies = setting.When switch
            {
                "on-success" => execution.Status == ExecutionStatus.Succeeded,
                // As StackStorm's failed states: a canceled execution did not fail, so only on-complete tells of it.
                "on-failure" => execution.Status is ExecutionStatus.Failed or ExecutionStatus.Timeout,
                _ => true,
            };
            if (!applies)
            {
                continue;
            }

            var scope = new TemplateScope()
                .Set("action_parameters", execution.Parameters)
                .Set("action_results", execution.Result)
                .Set("execution", payload);
            JsonNode? message, data;
            try
            {
                message = setting.Message.Render(scope);
                data = setting.Data.Render(scope);
            }
            catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
            {
                logger.ExecutionNotifyNotRendered(execution.Id, setting.When, ex.Message);
                message = $"(the notify message could not be rendered: {ex.Message})";
                data = new JsonObject();
            }

            // As StackStorm: a default message, and the result (as JSON text) in the data.
            message ??= $"Action {execution.ActionRef} {setting.When switch { "on-success" => "succeeded", "on-failure" => "failed", _ => "completed" }}.";
            if (data is JsonObject fields)
            {
                fields["result"] = execution.Result?.ToJsonString() ?? "null";
            }

            foreach (var route in setting.Routes)
            {
                var notification = new JsonObject
                {
                    ["execution_id"] = execution.Id,
                    ["status"] = execution.Status,
                    ["start_timestamp"] = payload["start_timestamp"]!.DeepClone(),
                    ["end_timestamp"] = payload["end_timestamp"]!.DeepClone(),
                    ["action_ref"] = execution.ActionRef,
                    ["runner_ref"] = execution.RunnerType,
                    ["route"] = route,
                    ["channel"] = route, // StackStorm's older name of the route, still sent
                    ["message"] = message?.DeepClone(),
                    ["data"] = data?.DeepClone(),
                };
                await dispatcher.DispatchAsync(new TriggerInstance($"notify-{execution.Id}-{setting.When}-{route}", CoreTriggers.NotifyTrigger, null,
                    notification, end, execution.TraceTag), cancellationToken);
            }
        }
    }
}
