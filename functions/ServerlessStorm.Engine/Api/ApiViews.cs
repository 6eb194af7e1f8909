using System.Globalization;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Engine.Api;

/// <summary>The API's JSON shapes, close to StackStorm's so its users recognise them.</summary>
public static class ApiViews
{
    public static JsonObject Execution(ExecutionRecord e) => new()
    {
        ["id"] = e.Id,
        ["action"] = new JsonObject { ["ref"] = e.ActionRef, ["runner_type"] = e.RunnerType },
        ["status"] = e.Status,
        ["start_timestamp"] = Time(e.StartTimestamp),
        ["end_timestamp"] = e.EndTimestamp is { } end ? Time(end) : null,
        ["elapsed_seconds"] = e.EndTimestamp is { } finished ? Math.Round((finished - e.StartTimestamp).TotalSeconds, 3) : null,
        ["parameters"] = e.Parameters.DeepClone(),
        ["result"] = e.Result?.DeepClone(),
        ["error"] = e.Error,
        ["trace_tag"] = e.TraceTag,
        ["context"] = new JsonObject { ["user"] = e.User },
        ["rule"] = e.RuleRef is null ? null : new JsonObject { ["ref"] = e.RuleRef },
        ["trigger_instance"] = e.TriggerInstanceId is null ? null : new JsonObject { ["id"] = e.TriggerInstanceId },
        ["re_run_of"] = e.ReRunOf,
        ["re_run_tasks"] = e.ReRunTasks is null ? null : new JsonArray([.. e.ReRunTasks.Select(t => (JsonNode)t)]),
        ["parent"] = e.ParentId,
        ["workflow_task"] = e.WorkflowTask,
        ["log"] = new JsonArray([.. e.History.Select(h => (JsonNode)new JsonObject { ["status"] = h.Status, ["timestamp"] = Time(h.At) })]),
    };

    /// <summary>An inquiry as StackStorm's API shows one: the question's settings and the response so far.</summary>
    public static JsonObject Inquiry(ExecutionRecord e) => new()
    {
        ["id"] = e.Id,
        ["status"] = e.Status,
        ["schema"] = e.Result?["schema"]?.DeepClone(),
        ["users"] = e.Result?["users"]?.DeepClone() ?? new JsonArray(),
        ["roles"] = e.Result?["roles"]?.DeepClone() ?? new JsonArray(),
        ["route"] = e.Result?["route"]?.DeepClone() ?? "",
        ["ttl"] = e.Result?["ttl"]?.DeepClone(),
        ["response"] = e.Result?["response"]?.DeepClone() ?? new JsonObject(),
        ["action"] = e.ActionRef,
        ["trace_tag"] = e.TraceTag,
        ["start_timestamp"] = Time(e.StartTimestamp),
        ["error"] = e.Error,
    };

    public static JsonObject TriggerInstance(TriggerInstanceRecord t) => new()
    {
        ["id"] = t.Id,
        ["trigger"] = t.TriggerType,
        ["trigger_parameters"] = t.TriggerParameters?.DeepClone(),
        ["payload"] = t.Payload?.DeepClone(),
        ["occurrence_time"] = Time(t.OccurredAt),
        ["status"] = t.Status,
        ["reason"] = t.Reason,
        ["trace_tag"] = t.TraceTag,
        ["context"] = new JsonObject { ["user"] = t.User },
    };

    public static JsonObject RuleEnforcement(RuleEnforcementRecord r) => new()
    {
        ["trigger_instance_id"] = r.TriggerInstanceId,
        ["rule"] = new JsonObject { ["ref"] = r.RuleRef },
        ["execution_id"] = r.ExecutionId,
        ["status"] = r.Status,
        ["failure_reason"] = r.FailureReason,
        ["enforced_at"] = Time(r.EnforcedAt),
        ["trace_tag"] = r.TraceTag,
        ["context"] = new JsonObject { ["user"] = r.User },
    };

    public static JsonObject Trace(AuditTrace trace) => new()
    {
        ["trace_tag"] = trace.TraceTag,
        ["trigger_instances"] = new JsonArray([.. trace.TriggerInstances.Select(t => (JsonNode)TriggerInstance(t))]),
        ["rule_enforcements"] = new JsonArray([.. trace.RuleEnforcements.Select(r => (JsonNode)RuleEnforcement(r))]),
        ["executions"] = new JsonArray([.. trace.Executions.Select(e => (JsonNode)Execution(e))]),
    };

    /// <summary>A datastore pair; a secret's value is masked unless it was decrypted on request.</summary>
    public static JsonObject KeyValue(Datastore.KeyValueRecord record, bool decrypted) => new()
    {
        ["name"] = record.Name,
        ["scope"] = record.Scope,
        ["value"] = record.Secret && !decrypted ? SecretMasker.Mask : record.Value,
        ["secret"] = record.Secret,
        ["expire_timestamp"] = record.ExpiresAt is { } expires ? Time(expires) : null,
    };

    /// <summary>What a value the API may not show is shown as.</summary>
    public const string Masked = "********";

    /// <summary>An API key as StackStorm shows one; the key itself is never here, its hash only when asked for.</summary>
    public static JsonObject ApiKey(Security.CredentialRecord key, bool showHash) => new()
    {
        ["id"] = key.Id,
        ["uid"] = showHash ? $"api_key:{key.Hash}" : Masked,
        ["user"] = key.User,
        ["key_hash"] = showHash ? key.Hash : Masked,
        ["metadata"] = key.Metadata.DeepClone(),
        ["created_at"] = Time(key.CreatedAt),
        ["enabled"] = key.Enabled,
    };

    public static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}
