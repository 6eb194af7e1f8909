using System.Globalization;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Json;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Engine.Security.Rbac;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Api;

/// <summary>
/// An API answer: the HTTP status, the JSON body (null for none) and any headers beyond the content type. Hosts only
/// translate it to their HTTP types.
/// </summary>
public sealed record ApiResponse(int StatusCode, JsonNode? Body)
{
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();

    public static ApiResponse Fault(int status, string message) => new(status, new JsonObject { ["faultstring"] = message });
}

/// <summary>
/// The HTTP API's operations (StackStorm's paths under <c>/api/v1</c> and <c>/auth/v1</c>) with no web framework in
/// them, called for an authenticated <see cref="Caller"/> through <see cref="ApiGateway"/>, so <c>storm serve</c> and
/// the Function app answer every request with the same code.
/// </summary>
public sealed partial class StormApi(WebhookSensor webhooks, ExecutionService executions, InquiryService inquiries, IAuditStore audit, KeyValueService datastore,
    IExecutionOutputStore output, PackCatalog catalog, CredentialService credentials, AccessPolicy access, Messaging.IMessageBus bus, AuditRetention retention, ILogger<StormApi> logger,
    Sensors.SensorScheduler sensors,
    Python.PackVirtualEnvironments? python = null, Python.IPythonLauncher? pythonLauncher = null)
{
    public const int MaxListLimit = 1000;

    /// <summary>GET /api/v1: what is loaded.</summary>
    public Task<ApiResponse> GetRootAsync(CancellationToken cancellationToken) => Task.FromResult(new ApiResponse(200, new JsonObject
    {
        ["name"] = "ServerlessStorm",
        ["packs"] = catalog.Packs.Count,
        ["actions"] = catalog.Actions.Count,
        ["rules"] = catalog.Rules.Count,
    }));

    /// <summary>POST /api/v1/webhooks/{hook}</summary>
    public async Task<ApiResponse> PostWebhookAsync(string hook, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, Caller caller, CancellationToken cancellationToken,
        string? deliveryId = null)
    {
        var outcome = await webhooks.AcceptAsync(hook, headers, body, cancellationToken, caller.User, deliveryId);
        return new ApiResponse(outcome.StatusCode, outcome.Body);
    }

    /// <summary>A delivery to a signed hook that failed verification: recorded as rejected (the secret is never in it), then 401.</summary>
    public async Task<ApiResponse> RefuseWebhookAsync(string hook, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, string reason, CancellationToken cancellationToken)
    {
        var outcome = await webhooks.RefuseAsync(hook, headers, body, 401, reason, cancellationToken);
        return new ApiResponse(outcome.StatusCode, outcome.Body);
    }

    /// <summary>POST /api/v1/executions with <c>{"action": "pack.name", "parameters": {…}}</c></summary>
    public async Task<ApiResponse> PostExecutionAsync(JsonNode? body, string? traceTag, Caller caller, CancellationToken cancellationToken)
    {
        if (body is not JsonObject request || request["action"] is not JsonValue a || !a.TryGetValue<string>(out var actionRef))
        {
            return ApiResponse.Fault(400, "the body must be a JSON object with \"action\" (the action ref) and optional \"parameters\"");
        }

        if (request["parameters"] is not (null or JsonObject))
        {
            return ApiResponse.Fault(400, "\"parameters\" must be a JSON object");
        }

        try
        {
            var record = await executions.RunAsync(actionRef, (JsonObject?)request["parameters"]?.DeepClone() ?? [], traceTag, caller.User, cancellationToken);
            return new ApiResponse(201, ApiViews.Execution(record));
        }
        catch (ActionNotFoundException ex)
        {
            return ApiResponse.Fault(404, ex.Message);
        }
        catch (ParameterValidationException ex)
        {
            var fault = new JsonObject { ["faultstring"] = ex.Message, ["problems"] = new JsonArray([.. ex.Problems.Select(p => (JsonNode)p)]) };
            return new ApiResponse(400, fault);
        }
    }

    /// <summary>POST /api/v1/executions/{id}/re_run with optional <c>{"parameters": {…}}</c> overrides</summary>
    public async Task<ApiResponse> ReRunExecutionAsync(string id, JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        if (body is not (null or JsonObject) || body?["parameters"] is not (null or JsonObject)
            || body?["tasks"] is not (null or JsonArray) || (body?["tasks"] as JsonArray)?.Any(t => t is not JsonValue v || !v.TryGetValue<string>(out _)) == true)
        {
            return ApiResponse.Fault(400, "the body, when given, must be a JSON object with optional \"parameters\" (an object of overrides) and \"tasks\" (workflow task names to run again)");
        }

        // A re-run opens the original's sealed secrets and datastore values: another user's, or a rule's, are for an
        // administrator to run again, not for whoever may run the action.
        if (await audit.GetExecutionAsync(id, cancellationToken) is { } original && original.User != caller.User && !access.IsAdmin(caller.User))
        {
            return Denied(caller, $"execution '{id}' ran for {original.User ?? "nobody recorded"}: re-running another user's execution (with its secrets) needs administrator access");
        }

        try
        {
            var tasks = (body?["tasks"] as JsonArray)?.Select(t => t!.GetValue<string>()).ToList();
            var record = await executions.ReRunAsync(id, (JsonObject?)body?["parameters"]?.DeepClone() ?? [], caller.User, cancellationToken, tasks);
            return new ApiResponse(201, ApiViews.Execution(record));
        }
        catch (Exception ex) when (ex is ExecutionNotFoundException or ActionNotFoundException)
        {
            return ApiResponse.Fault(404, ex.Message);
        }
        catch (ParameterValidationException ex)
        {
            return new ApiResponse(400, new JsonObject { ["faultstring"] = ex.Message, ["problems"] = new JsonArray([.. ex.Problems.Select(p => (JsonNode)p)]) });
        }
    }

    /// <summary>DELETE /api/v1/executions/{id}: cancel</summary>
    public async Task<ApiResponse> CancelExecutionAsync(string id, Caller caller, CancellationToken cancellationToken)
    {
        try
        {
            return new ApiResponse(200, ApiViews.Execution(await executions.CancelAsync(id, cancellationToken)));
        }
        catch (ExecutionNotFoundException ex)
        {
            return ApiResponse.Fault(404, ex.Message);
        }
    }

    /// <summary>PUT /api/v1/executions/{id} with <c>{"status": "pausing"}</c> or <c>{"status": "resuming"}</c>, as StackStorm pauses and resumes workflows.</summary>
    public async Task<ApiResponse> UpdateExecutionAsync(string id, JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        var status = body is JsonObject o && o["status"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        try
        {
            return status switch
            {
                "pausing" or ExecutionStatus.Paused => new ApiResponse(200, ApiViews.Execution(await executions.PauseAsync(id, cancellationToken))),
                "resuming" or ExecutionStatus.Running => new ApiResponse(200, ApiViews.Execution(await executions.ResumeAsync(id, cancellationToken))),
                _ => ApiResponse.Fault(400, "the body must be {\"status\": \"pausing\"} or {\"status\": \"resuming\"}"),
            };
        }
        catch (ExecutionNotFoundException ex)
        {
            return ApiResponse.Fault(404, ex.Message);
        }
        catch (InvalidOperationException ex)
        {
            return ApiResponse.Fault(409, ex.Message);
        }
    }

    /// <summary>
    /// GET /api/v1/executions/{id}/output?offset=N: live output from chunk N on, and the execution's status; for a
    /// workflow, also its task executions so far (<c>children</c>: id, task, status, action, runner_type, in the order they started),
    /// whose output a follower reads the same way.
    /// </summary>
    public async Task<ApiResponse> GetExecutionOutputAsync(string id, IReadOnlyDictionary<string, string?> query, CancellationToken cancellationToken)
    {
        if (await audit.GetExecutionAsync(id, cancellationToken) is not { } record)
        {
            return ApiResponse.Fault(404, $"execution '{id}' does not exist");
        }

        var offset = long.TryParse(query.GetValueOrDefault("offset"), CultureInfo.InvariantCulture, out var o) && o >= 0 ? o : 0;
        var chunks = await output.ReadAsync(id, offset, cancellationToken);
        var reply = new JsonObject
        {
            ["status"] = record.Status,
            ["chunks"] = new JsonArray([.. chunks.Select(c => (JsonNode)new JsonObject { ["sequence"] = c.Sequence, ["stream"] = c.Stream, ["text"] = c.Text })]),
            ["next_offset"] = chunks.Count == 0 ? offset : chunks[^1].Sequence + 1,
        };
        if (record.RunnerType == Workflows.WorkflowDefinition.RunnerType)
        {
            var trace = await audit.GetTraceAsync(record.TraceTag, cancellationToken);
            reply["children"] = new JsonArray([.. trace.Executions.Where(e => e.ParentId == id).OrderBy(e => e.StartTimestamp).ThenBy(e => e.Id, StringComparer.Ordinal)
                .Select(e => (JsonNode)new JsonObject { ["id"] = e.Id, ["task"] = e.WorkflowTask, ["status"] = e.Status, ["action"] = e.ActionRef, ["runner_type"] = e.RunnerType })]);
        }

        return new ApiResponse(200, reply);
    }

    /// <summary>GET /api/v1/inquiries: the inquiries waiting for a response, newest first.</summary>
    public async Task<ApiResponse> ListInquiriesAsync(IReadOnlyDictionary<string, string?> query, CancellationToken cancellationToken)
    {
        var limit = query.GetValueOrDefault("limit") is { } text && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and <= MaxListLimit ? n : 50;
        var pending = await inquiries.ListPendingAsync(limit, cancellationToken);
        return new ApiResponse(200, new JsonArray([.. pending.Select(i => (JsonNode)ApiViews.Inquiry(i))]));
    }

    /// <summary>GET /api/v1/inquiries/{id}</summary>
    public async Task<ApiResponse> GetInquiryAsync(string id, CancellationToken cancellationToken) =>
        await inquiries.GetAsync(id, cancellationToken) is { } inquiry
            ? new ApiResponse(200, ApiViews.Inquiry(inquiry))
            : ApiResponse.Fault(404, $"inquiry '{id}' does not exist");

    /// <summary>
    /// PUT /api/v1/inquiries/{id} with <c>{"response": {…}}</c> (StackStorm's body). The responder is the caller; a
    /// <c>"user"</c> in the body, which older clients send, is ignored: nobody answers in another's name.
    /// </summary>
    public async Task<ApiResponse> RespondToInquiryAsync(string id, JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        if (body is not JsonObject request || request["response"] is not JsonObject response)
        {
            return ApiResponse.Fault(400, "the body must be a JSON object with \"response\" (a JSON object)");
        }

        try
        {
            return new ApiResponse(200, ApiViews.Inquiry(await inquiries.RespondAsync(id, response, caller.User, cancellationToken)));
        }
        catch (InquiryRefusedException ex)
        {
            var fault = new JsonObject { ["faultstring"] = ex.Message };
            if (ex.Problems.Count > 0)
            {
                fault["problems"] = new JsonArray([.. ex.Problems.Select(p => (JsonNode)p)]);
            }

            return new ApiResponse(ex.Status, fault);
        }
    }

    /// <summary>GET /api/v1/executions/{id}</summary>
    public async Task<ApiResponse> GetExecutionAsync(string id, CancellationToken cancellationToken) =>
        await audit.GetExecutionAsync(id, cancellationToken) is { } record
            ? new ApiResponse(200, ApiViews.Execution(record))
            : ApiResponse.Fault(404, $"execution '{id}' does not exist");

    /// <summary>GET /api/v1/executions?status=&amp;limit=&amp;since=&amp;until=</summary>
    public async Task<ApiResponse> ListExecutionsAsync(IReadOnlyDictionary<string, string?> query, CancellationToken cancellationToken)
    {
        if (ParseQuery(query, ExecutionStatus.All) is not { } parsed)
        {
            return QueryFault(query, ExecutionStatus.All);
        }

        var records = await audit.QueryExecutionsAsync(parsed, cancellationToken);
        return new ApiResponse(200, new JsonArray([.. records.Select(r => (JsonNode)ApiViews.Execution(r))]));
    }

    /// <summary>GET /api/v1/triggerinstances?status=&amp;limit=&amp;since=&amp;until=</summary>
    public async Task<ApiResponse> ListTriggerInstancesAsync(IReadOnlyDictionary<string, string?> query, CancellationToken cancellationToken)
    {
        string[] statuses = [TriggerInstanceStatus.Pending, TriggerInstanceStatus.Processing, TriggerInstanceStatus.Processed, TriggerInstanceStatus.ProcessingFailed, TriggerInstanceStatus.Rejected];
        if (ParseQuery(query, statuses) is not { } parsed)
        {
            return QueryFault(query, statuses);
        }

        var records = await audit.QueryTriggerInstancesAsync(parsed, cancellationToken);
        return new ApiResponse(200, new JsonArray([.. records.Select(r => (JsonNode)ApiViews.TriggerInstance(r))]));
    }

    /// <summary>GET /api/v1/traces/{traceTag}</summary>
    public async Task<ApiResponse> GetTraceAsync(string traceTag, CancellationToken cancellationToken)
    {
        var trace = await audit.GetTraceAsync(traceTag, cancellationToken);
        return trace.TriggerInstances.Count + trace.Executions.Count == 0
            ? ApiResponse.Fault(404, $"nothing is recorded under trace tag '{traceTag}'")
            : new ApiResponse(200, ApiViews.Trace(trace));
    }

    /// <summary>
    /// GET /api/v1/keys?scope=system&amp;prefix=&amp;decrypt=false&amp;user=: in the user scope, the caller's own keys
    /// (another user's only for an administrator, with <c>user</c>); <c>scope=all</c> (st2 key list's default) lists
    /// the system keys and then the user's.
    /// </summary>
    public async Task<ApiResponse> ListKeysAsync(IReadOnlyDictionary<string, string?> query, Caller caller, CancellationToken cancellationToken) =>
        await KeysAsync(async () =>
        {
            var requested = query.GetValueOrDefault("scope") ?? "system";
            var decrypt = IsTrue(query.GetValueOrDefault("decrypt"));
            var views = new JsonArray();
            foreach (var scope in requested == "all" ? KeyValueService.Scopes : [requested])
            {
                var (owner, refusal) = KeyOwner(scope, query.GetValueOrDefault("user"), decrypt, caller);
                if (refusal is not null)
                {
                    return refusal;
                }

                var prefix = owner is null ? query.GetValueOrDefault("prefix") : $"{owner}:{query.GetValueOrDefault("prefix")}";
                foreach (var record in await datastore.ListAsync(scope, prefix, cancellationToken))
                {
                    views.Add(KeyView(decrypt && record.Secret
                        ? (await datastore.GetAsync(record.Scope, record.Name, decrypt: true, cancellationToken)) ?? record
                        : record, decrypt, owner));
                }
            }

            return new ApiResponse(200, views);
        });

    /// <summary>GET /api/v1/keys/{name}?scope=system&amp;decrypt=false&amp;user=</summary>
    public Task<ApiResponse> GetKeyAsync(string name, IReadOnlyDictionary<string, string?> query, Caller caller, CancellationToken cancellationToken) =>
        KeysAsync(async () =>
        {
            var decrypt = IsTrue(query.GetValueOrDefault("decrypt"));
            var scope = query.GetValueOrDefault("scope") ?? "system";
            var (owner, refusal) = KeyOwner(scope, query.GetValueOrDefault("user"), decrypt, caller);
            return refusal ?? (await datastore.GetAsync(scope, StoredName(name, owner), decrypt, cancellationToken) is { } record
                ? new ApiResponse(200, KeyView(record, decrypt, owner))
                : ApiResponse.Fault(404, $"key '{name}' does not exist in scope {scope}"));
        });

    /// <summary>PUT /api/v1/keys/{name} with <c>{"value": "…", "secret": false, "ttl": seconds, "scope": "system", "user": "…"}</c></summary>
    public Task<ApiResponse> PutKeyAsync(string name, JsonNode? body, Caller caller, CancellationToken cancellationToken) =>
        KeysAsync(async () =>
        {
            if (body is not JsonObject request || request["value"] is not JsonValue v || !v.TryGetValue<string>(out var value))
            {
                return ApiResponse.Fault(400, "the body must be a JSON object with \"value\" (a string), and optional \"secret\", \"ttl\" (seconds), \"scope\" and \"user\"");
            }

            var secret = request["secret"] is JsonValue s && s.TryGetValue<bool>(out var isSecret) && isSecret;
            if (request["ttl"] is { } ttlNode && (!JsonNumbers.TryGetDouble(ttlNode, out var ttlSeconds) || ttlSeconds is < 0 or > 100.0 * 365 * 86_400))
            {
                return ApiResponse.Fault(400, "\"ttl\" must be seconds, at most 100 years");
            }

            TimeSpan? ttl = JsonNumbers.TryGetDouble(request["ttl"], out var seconds) && seconds > 0 ? TimeSpan.FromSeconds(seconds) : null;
            var scope = Text(request["scope"]) ?? "system";
            var (owner, refusal) = KeyOwner(scope, Text(request["user"]), decrypt: false, caller);
            if (refusal is not null)
            {
                return refusal;
            }

            await datastore.SetAsync(scope, StoredName(name, owner), value, secret, ttl, cancellationToken);
            logger.DatastoreKeyChanged("set", scope, name, owner ?? "", caller.User);
            var stored = await datastore.GetAsync(scope, StoredName(name, owner), decrypt: false, cancellationToken);
            return new ApiResponse(200, KeyView(stored!, decrypted: false, owner));
        });

    /// <summary>DELETE /api/v1/keys/{name}?scope=system&amp;user=</summary>
    public Task<ApiResponse> DeleteKeyAsync(string name, IReadOnlyDictionary<string, string?> query, Caller caller, CancellationToken cancellationToken) =>
        KeysAsync(async () =>
        {
            var scope = query.GetValueOrDefault("scope") ?? "system";
            var (owner, refusal) = KeyOwner(scope, query.GetValueOrDefault("user"), decrypt: false, caller);
            if (refusal is not null)
            {
                return refusal;
            }

            if (!await datastore.DeleteAsync(scope, StoredName(name, owner), cancellationToken))
            {
                return ApiResponse.Fault(404, $"key '{name}' does not exist in scope {scope}");
            }

            logger.DatastoreKeyChanged("deleted", scope, name, owner ?? "", caller.User);
            return new ApiResponse(200, new JsonObject { ["deleted"] = name, ["scope"] = scope });
        });

    /// <summary>
    /// The RBAC resource of a datastore key (<c>key_value_pair:st2kv.system:NAME</c>), or null for a key of the
    /// caller's own user scope, which is always theirs.
    /// </summary>
    public ResourceRef? KeyResource(string name, string? scope, string? user, Caller caller) => (scope ?? "system") switch
    {
        "user" when user is null || user == caller.User => null,
        "user" => new ResourceRef($"key_value_pair:st2kv.user:{user}:{name}"),
        var other => new ResourceRef($"key_value_pair:st2kv.{other}:{name}"),
    };

    /// <summary>
    /// Whose user-scope keys a request reaches (null in the system scope), or the refusal: another user's keys and
    /// system secrets in the clear are for administrators only, as in StackStorm.
    /// </summary>
    private (string? Owner, ApiResponse? Refusal) KeyOwner(string scope, string? user, bool decrypt, Caller caller)
    {
        if (scope != "user")
        {
            return decrypt && !access.IsAdmin(caller.User)
                ? (null, Denied(caller, "Decrypt option requires administrator access"))
                : (null, null);
        }

        return user is { Length: > 0 } && user != caller.User && !access.IsAdmin(caller.User)
            ? (null, Denied(caller, "\"user\" attribute can only be provided by admins"))
            : (user is { Length: > 0 } ? user : caller.User, null);
    }

    private static string StoredName(string name, string? owner) => owner is null ? name : $"{owner}:{name}";

    private static JsonObject KeyView(Datastore.KeyValueRecord record, bool decrypted, string? owner)
    {
        var view = ApiViews.KeyValue(owner is null ? record : record with { Name = record.Name[(owner.Length + 1)..] }, decrypted);
        if (owner is not null)
        {
            view["user"] = owner;
        }

        return view;
    }

    private ApiResponse Denied(Caller caller, string message)
    {
        logger.AdminOnlyDenied(caller.User, message);
        return ApiResponse.Fault(403, message);
    }

    /// <summary>The RBAC resource of an execution: covered by its action's grants.</summary>
    public async Task<ResourceRef?> ExecutionResourceAsync(string id, CancellationToken cancellationToken) =>
        await audit.GetExecutionAsync(id, cancellationToken) is { } record ? ResourceRef.Execution(record.Id, record.ActionRef) : null;

    /// <summary>The RBAC resource of an inquiry: answering it is also open to whoever may run the workflow that asks.</summary>
    public async Task<ResourceRef?> InquiryResourceAsync(string id, CancellationToken cancellationToken)
    {
        if (await audit.GetExecutionAsync(id, cancellationToken) is not { } inquiry)
        {
            return null;
        }

        var workflow = inquiry.ParentId is { } parent ? await audit.GetExecutionAsync(parent, cancellationToken) : null;
        return workflow is null ? new ResourceRef("inquiry:") : new ResourceRef("inquiry:", workflow.ActionRef.Split('.')[0], ResourceRef.Action(workflow.ActionRef).Uid);
    }

    /// <summary>The RBAC resource of an API key (<c>api_key:HASH</c>).</summary>
    public async Task<ResourceRef?> ApiKeyResourceAsync(string id, CancellationToken cancellationToken) =>
        await credentials.GetApiKeyAsync(id, cancellationToken) is { } key ? new ResourceRef($"api_key:{key.Hash}") : null;

    /// <summary>GET /api/v1/apikeys: every API key, without its secret (which was shown once, at creation).</summary>
    public async Task<ApiResponse> ListApiKeysAsync(IReadOnlyDictionary<string, string?> query, Caller caller, CancellationToken cancellationToken)
    {
        if (ShowSecretsRefusal(query, caller) is { } refusal)
        {
            return refusal;
        }

        var keys = await credentials.ListApiKeysAsync(cancellationToken);
        return new ApiResponse(200, new JsonArray([.. keys.Select(k => (JsonNode)ApiViews.ApiKey(k, IsTrue(query.GetValueOrDefault("show_secrets"))))]));
    }

    // With authentication off every caller is the administrator: a credential made then would outlive it.
    private static ApiResponse? CredentialsRefusal(Caller caller) => caller.Method == Caller.ByAuthDisabled
        ? ApiResponse.Fault(409, "authentication is off (--no-auth): no API key or token is issued, since it would still work once authentication is back on")
        : null;

    // Key hashes are what 'apikey load' takes: an administrator's to see, as in StackStorm.
    private ApiResponse? ShowSecretsRefusal(IReadOnlyDictionary<string, string?> query, Caller caller) =>
        IsTrue(query.GetValueOrDefault("show_secrets")) && !access.IsAdmin(caller.User) ? Denied(caller, "show_secrets requires administrator access") : null;

    /// <summary>GET /api/v1/apikeys/{id}: one API key by its id (or key hash).</summary>
    public async Task<ApiResponse> GetApiKeyAsync(string id, IReadOnlyDictionary<string, string?> query, Caller caller, CancellationToken cancellationToken) =>
        ShowSecretsRefusal(query, caller) ?? (await credentials.GetApiKeyAsync(id, cancellationToken) is { } key
            ? new ApiResponse(200, ApiViews.ApiKey(key, IsTrue(query.GetValueOrDefault("show_secrets"))))
            : ApiResponse.Fault(404, $"API key '{id}' does not exist"));

    /// <summary>
    /// POST /api/v1/apikeys with optional <c>{"user": "…", "metadata": {…}}</c>: a new key for the user (the caller
    /// when none is named). The answer holds the key itself, which is stored only as its hash and never shown again.
    /// With <c>"key_hash"</c> (as <c>st2 apikey load</c> sends keys exported from StackStorm), the key is stored by
    /// that hash and no key is made.
    /// </summary>
    public async Task<ApiResponse> CreateApiKeyAsync(JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        if (body is not (null or JsonObject) || body?["user"] is not (null or JsonValue) || body?["metadata"] is not (null or JsonObject)
            || body?["key_hash"] is not (null or JsonValue) || (body?["enabled"] is not null && !IsBool(body["enabled"])))
        {
            return ApiResponse.Fault(400, "the body, when given, must be a JSON object with optional \"user\" (a name), \"metadata\" (an object), \"key_hash\" and \"enabled\"");
        }

        if (CredentialsRefusal(caller) is { } off)
        {
            return off;
        }

        var user = Text(body?["user"]) is { Length: > 0 } name ? name : caller.User;
        var hash = Text(body?["key_hash"]) is { Length: > 0 } given && given != ApiViews.Masked ? given : null;
        // A key for someone else, or one whose secret the caller chose (a hash), would let them act as that user.
        if ((user != caller.User || hash is not null) && !access.IsAdmin(caller.User))
        {
            return Denied(caller, hash is null ? "only administrators may create API keys for other users" : "only administrators may load API keys by their hash");
        }

        var metadata = (JsonObject?)body?["metadata"]?.DeepClone() ?? [];
        metadata["created_by"] = caller.User;
        if (hash is not null)
        {
            var loaded = await credentials.LoadApiKeyAsync(user, hash, metadata, body?["enabled"]?.GetValue<bool>() ?? true, cancellationToken);
            var shown = ApiViews.ApiKey(loaded, showHash: false);
            shown["key"] = null;
            return new ApiResponse(201, shown);
        }

        var (record, key) = await credentials.CreateApiKeyAsync(user, metadata, cancellationToken);
        var view = ApiViews.ApiKey(record, showHash: false);
        view["key"] = key;
        return new ApiResponse(201, view);
    }

    /// <summary>
    /// PUT /api/v1/apikeys/{id} with the key as GET shows it (st2's enable and disable send it back with
    /// <c>enabled</c> changed): only <c>enabled</c> may change; a different <c>key_hash</c> is refused.
    /// </summary>
    public async Task<ApiResponse> UpdateApiKeyAsync(string id, JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        if (body is not JsonObject request || !IsBool(request["enabled"]))
        {
            return ApiResponse.Fault(400, "the body must be a JSON object with \"enabled\" (true or false)");
        }

        if (await credentials.GetApiKeyAsync(id, cancellationToken) is not { } existing)
        {
            return ApiResponse.Fault(404, $"API key '{id}' does not exist");
        }

        if (Text(request["key_hash"]) is { Length: > 0 } hash && hash != ApiViews.Masked && hash != existing.Hash)
        {
            return ApiResponse.Fault(400, "Update of key_hash is not allowed.");
        }

        return await credentials.SetApiKeyEnabledAsync(existing.Id, request["enabled"]!.GetValue<bool>(), cancellationToken) is { } key
            ? new ApiResponse(200, ApiViews.ApiKey(key, showHash: false))
            : ApiResponse.Fault(404, $"API key '{id}' does not exist");
    }

    /// <summary>DELETE /api/v1/apikeys/{id}</summary>
    public async Task<ApiResponse> DeleteApiKeyAsync(string id, Caller caller, CancellationToken cancellationToken) =>
        await credentials.DeleteApiKeyAsync(id, cancellationToken) is not null
            ? new ApiResponse(204, null)
            : ApiResponse.Fault(404, $"API key '{id}' does not exist");

    /// <summary>
    /// POST /auth/v1/tokens with optional <c>{"ttl": seconds}</c>, for a caller who gave a user name and password:
    /// StackStorm's token, sent back as <c>X-Auth-Token</c> until it expires.
    /// </summary>
    public async Task<ApiResponse> CreateTokenAsync(JsonNode? body, Caller caller, CancellationToken cancellationToken)
    {
        if (CredentialsRefusal(caller) is { } off)
        {
            return off;
        }

        if (body is not (null or JsonObject) || (body?["ttl"] is { } t && (!JsonNumbers.TryGetDouble(t, out var s) || s < 1 || s > 10 * 365 * 86_400 || s != Math.Floor(s))))
        {
            return ApiResponse.Fault(400, "the body, when given, must be a JSON object with optional \"ttl\" (whole seconds, at least 1)");
        }

        TimeSpan? ttl = JsonNumbers.TryGetDouble(body?["ttl"], out var seconds) ? TimeSpan.FromSeconds(seconds) : null;
        var (record, token) = await credentials.IssueTokenAsync(caller.User, ttl, cancellationToken);
        return new ApiResponse(201, new JsonObject
        {
            ["id"] = record.Id,
            ["user"] = record.User,
            ["token"] = token,
            ["expiry"] = ApiViews.Time(record.ExpiresAt!.Value),
            ["metadata"] = new JsonObject(),
        });
    }

    private static async Task<ApiResponse> KeysAsync(Func<Task<ApiResponse>> action)
    {
        try
        {
            return await action();
        }
        catch (KeyValueException ex)
        {
            return ApiResponse.Fault(400, ex.Message);
        }
    }

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;

    private static bool IsBool(JsonNode? node) => node is JsonValue v && v.TryGetValue<bool>(out _);

    private static bool IsTrue(string? value) => value is "true" or "True" or "1" or "yes";

    private static AuditQuery? ParseQuery(IReadOnlyDictionary<string, string?> query, IReadOnlyCollection<string> statuses)
    {
        var status = query.GetValueOrDefault("status");
        if (status is not null && !statuses.Contains(status))
        {
            return null;
        }

        var limit = 50;
        if (query.GetValueOrDefault("limit") is { } limitText && (!int.TryParse(limitText, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxListLimit))
        {
            return null;
        }

        DateTimeOffset? Time(string name) => query.GetValueOrDefault(name) is { } text
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : null;
        if ((query.ContainsKey("since") && Time("since") is null) || (query.ContainsKey("until") && Time("until") is null))
        {
            return null;
        }

        return new AuditQuery(status, Time("since"), Time("until"), limit);
    }

    private static ApiResponse QueryFault(IReadOnlyDictionary<string, string?> query, IReadOnlyCollection<string> statuses) =>
        ApiResponse.Fault(400, $"invalid query {string.Join("&", query.Select(q => $"{q.Key}={q.Value}"))}: status is one of {string.Join(", ", statuses)}; " +
            $"limit is 1-{MaxListLimit}; since and until are ISO 8601 times");
}
