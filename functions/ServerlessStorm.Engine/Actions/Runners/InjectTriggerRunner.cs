using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type inject-trigger (core.inject_trigger): dispatches a trigger instance of any pack's trigger type, as
/// StackStorm's action does, through the generic webhook's path, so the same checks apply (the type exists, is not
/// the platform's own, the payload matches its payload_schema). The execution id is the delivery id, so an execution
/// delivered twice injects one trigger instance. The trigger instance records the execution's user, as StackStorm's
/// action posts with that user's token, and that user needs <c>webhook_send</c> on the generic webhook, as the post
/// does (<paramref name="denial"/>: why a user may not, or null).
/// </summary>
public sealed class InjectTriggerRunner(Func<WebhookSensor>? webhooks, Func<string, string?>? denial = null) : IActionRunner
{
    public const string Type = "inject-trigger";

    public string RunnerType => Type;

    public async Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        if (webhooks is null)
        {
            return RunnerResult.Failed([], "this host has no trigger dispatch: run core.inject_trigger where the rules engine runs");
        }

        var trigger = ParameterReader.String(context.Parameters, "trigger");
        var triggerName = ParameterReader.String(context.Parameters, "trigger_name");
        if (!string.IsNullOrEmpty(trigger) && !string.IsNullOrEmpty(triggerName))
        {
            return RunnerResult.Failed([], "parameters 'trigger' and 'trigger_name' are mutually exclusive");
        }

        var type = string.IsNullOrEmpty(trigger) ? triggerName : trigger;
        if (string.IsNullOrEmpty(type))
        {
            return RunnerResult.Failed([], "give the trigger type to inject in 'trigger_name'");
        }

        if (context.User is { } user && denial?.Invoke(user) is { } refused)
        {
            return RunnerResult.Failed([], $"the trigger was not injected: {refused}");
        }

        var body = new JsonObject
        {
            ["trigger"] = type,
            ["payload"] = context.Parameters["payload"]?.DeepClone() ?? new JsonObject(),
            ["trace_tag"] = ParameterReader.String(context.Parameters, "trace_tag") ?? context.TraceTag,
        };
        var outcome = await webhooks().AcceptAsync(WebhookSensor.GenericHook,
            [KeyValuePair.Create("Content-Type", "application/json"), KeyValuePair.Create("Idempotency-Key", context.ExecutionId)],
            System.Text.Encoding.UTF8.GetBytes(body.ToJsonString()), cancellationToken, user: context.User);
        if (outcome.StatusCode >= 300)
        {
            var reason = outcome.Body["faultstring"]?.GetValue<string>() ?? outcome.Body.ToJsonString();
            return RunnerResult.Failed([], $"the trigger was not injected: {reason}");
        }

        body["trigger_instance_id"] = outcome.Body["trigger_instance_id"]?.DeepClone();
        body["trace_tag"] = outcome.Body["trace_tag"]?.DeepClone();
        return RunnerResult.Succeeded(body);
    }
}
