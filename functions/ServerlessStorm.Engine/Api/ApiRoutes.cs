using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Engine.Security.Rbac;

namespace ServerlessStorm.Engine.Api;

/// <summary>How a route's caller proves who they are.</summary>
public enum RouteAuth
{
    /// <summary>An API key or token in a header (<c>St2-Api-Key</c>, <c>X-Auth-Token</c>) or an Entra ID bearer token.</summary>
    Credentials,

    /// <summary>As <see cref="Credentials"/>, or in the query (<c>?st2-api-key=</c>, <c>?x-auth-token=</c>), for senders that cannot set headers.</summary>
    Webhook,

    /// <summary>A user name and password (HTTP Basic), checked by the user backend: asking for a token.</summary>
    Password,
}

/// <summary>One request to a matched route: the request, the route's values, the caller and the body as JSON.</summary>
public sealed record ApiCall(ApiRequest Request, IReadOnlyDictionary<string, string> Values, Caller Caller, JsonNode? Json)
{
    /// <summary>The delivery id a verified webhook signature vouches for, which makes the delivery idempotent.</summary>
    public string? DeliveryId { get; init; }

    public string this[string name] => Values[name];
}

/// <summary>
/// One route of the API: method, path template (<c>{name}</c> matches one segment, <c>{**name}</c> the rest), how the
/// caller authenticates, StackStorm's permission type the route needs, the handler, and for a permission on a
/// resource, how to find the resource (null from it: nothing to check, the handler answers 400 or 404, or the
/// resource is the caller's own).
/// </summary>
public sealed class ApiRoute(string method, string template, RouteAuth auth, string permission, Func<ApiCall, CancellationToken, Task<ApiResponse>> handle,
    Func<ApiCall, CancellationToken, Task<ResourceRef?>>? resource = null)
{
    private readonly string[] _segments = template.Trim('/').Split('/');

    public string Method { get; } = method;

    public string Template { get; } = template;

    public RouteAuth Auth { get; } = auth;

    public string Permission { get; } = permission;

    /// <summary>Whether the body is JSON (refused unless sent as <c>application/json</c>) rather than raw bytes (webhooks).</summary>
    public bool TakesJson => Auth != RouteAuth.Webhook && Method is "POST" or "PUT" or "PATCH";

    public Func<ApiCall, CancellationToken, Task<ApiResponse>> Handle { get; } = handle;

    public Func<ApiCall, CancellationToken, Task<ResourceRef?>>? Resource { get; } = resource;

    public bool TryMatch(string[] path, out Dictionary<string, string> values)
    {
        values = new(StringComparer.Ordinal);
        for (var i = 0; i < _segments.Length; i++)
        {
            var segment = _segments[i];
            if (segment.StartsWith("{**", StringComparison.Ordinal))
            {
                var rest = string.Join('/', path.Skip(i));
                values[segment[3..^1]] = rest;
                return rest.Length > 0;
            }

            if (i >= path.Length)
            {
                return false;
            }

            if (segment.StartsWith('{'))
            {
                if (path[i].Length == 0)
                {
                    return false;
                }

                values[segment[1..^1]] = path[i];
            }
            else if (!string.Equals(segment, path[i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return path.Length == _segments.Length;
    }
}

/// <summary>
/// The API's one route table (StackStorm's paths under <c>/api/v1</c> and <c>/auth/v1</c>), which every host serves
/// through <see cref="ApiGateway"/>. A route is added here and nowhere else.
/// </summary>
public static class ApiRoutes
{
    public static IReadOnlyList<ApiRoute> For(StormApi api) =>
    [
        new("GET", "/api/v1", RouteAuth.Credentials, Permissions.None, (c, ct) => api.GetRootAsync(ct)),
        new("POST", "/api/v1/webhooks/{**hook}", RouteAuth.Webhook, Permissions.WebhookSend, (c, ct) => api.PostWebhookAsync(c["hook"], c.Request.Headers, c.Request.Body, c.Caller, ct, c.DeliveryId),
            (c, _) => Resource(new ResourceRef($"webhook:{c["hook"].Trim('/')}"))),
        new("POST", "/api/v1/executions", RouteAuth.Credentials, Permissions.ActionExecute, (c, ct) => api.PostExecutionAsync(c.Json, c.Request.Header(Triggers.WebhookSensor.TraceTagHeader), c.Caller, ct),
            (c, _) => Resource((c.Json as JsonObject)?["action"] is JsonValue a && a.TryGetValue<string>(out var action) ? ResourceRef.Action(action) : null)),
        new("GET", "/api/v1/executions", RouteAuth.Credentials, Permissions.ExecutionList, (c, ct) => api.ListExecutionsAsync(c.Request.Query, ct)),
        new("GET", "/api/v1/executions/{id}", RouteAuth.Credentials, Permissions.ExecutionView, (c, ct) => api.GetExecutionAsync(c["id"], ct),
            (c, ct) => api.ExecutionResourceAsync(c["id"], ct)),
        new("POST", "/api/v1/executions/{id}/re_run", RouteAuth.Credentials, Permissions.ExecutionReRun, (c, ct) => api.ReRunExecutionAsync(c["id"], c.Json, c.Caller, ct),
            (c, ct) => api.ExecutionResourceAsync(c["id"], ct)),
        new("GET", "/api/v1/executions/{id}/output", RouteAuth.Credentials, Permissions.ExecutionView, (c, ct) => api.GetExecutionOutputAsync(c["id"], c.Request.Query, ct),
            (c, ct) => api.ExecutionResourceAsync(c["id"], ct)),
        new("DELETE", "/api/v1/executions/{id}", RouteAuth.Credentials, Permissions.ExecutionStop, (c, ct) => api.CancelExecutionAsync(c["id"], c.Caller, ct),
            (c, ct) => api.ExecutionResourceAsync(c["id"], ct)),
        new("PUT", "/api/v1/executions/{id}", RouteAuth.Credentials, Permissions.ExecutionStop, (c, ct) => api.UpdateExecutionAsync(c["id"], c.Json, c.Caller, ct),
            (c, ct) => api.ExecutionResourceAsync(c["id"], ct)),
        new("GET", "/api/v1/triggerinstances", RouteAuth.Credentials, Permissions.TriggerList, (c, ct) => api.ListTriggerInstancesAsync(c.Request.Query, ct)),
        new("GET", "/api/v1/traces/{traceTag}", RouteAuth.Credentials, Permissions.TraceView, (c, ct) => api.GetTraceAsync(c["traceTag"], ct),
            (c, _) => Resource(new ResourceRef($"trace:{c["traceTag"]}"))),
        new("GET", "/api/v1/keys", RouteAuth.Credentials, Permissions.KeyValuePairList, (c, ct) => api.ListKeysAsync(c.Request.Query, c.Caller, ct)),
        new("GET", "/api/v1/keys/{name}", RouteAuth.Credentials, Permissions.KeyValuePairView, (c, ct) => api.GetKeyAsync(c["name"], c.Request.Query, c.Caller, ct),
            (c, _) => Resource(api.KeyResource(c["name"], c.Request.Query.GetValueOrDefault("scope"), c.Request.Query.GetValueOrDefault("user"), c.Caller))),
        new("PUT", "/api/v1/keys/{name}", RouteAuth.Credentials, Permissions.KeyValuePairSet, (c, ct) => api.PutKeyAsync(c["name"], c.Json, c.Caller, ct),
            (c, _) => Resource(api.KeyResource(c["name"], Text((c.Json as JsonObject)?["scope"]), Text((c.Json as JsonObject)?["user"]), c.Caller))),
        new("DELETE", "/api/v1/keys/{name}", RouteAuth.Credentials, Permissions.KeyValuePairDelete, (c, ct) => api.DeleteKeyAsync(c["name"], c.Request.Query, c.Caller, ct),
            (c, _) => Resource(api.KeyResource(c["name"], c.Request.Query.GetValueOrDefault("scope"), c.Request.Query.GetValueOrDefault("user"), c.Caller))),
        new("GET", "/api/v1/inquiries", RouteAuth.Credentials, Permissions.InquiryList, (c, ct) => api.ListInquiriesAsync(c.Request.Query, ct)),
        new("GET", "/api/v1/inquiries/{id}", RouteAuth.Credentials, Permissions.InquiryView, (c, ct) => api.GetInquiryAsync(c["id"], ct)),
        new("PUT", "/api/v1/inquiries/{id}", RouteAuth.Credentials, Permissions.InquiryRespond, (c, ct) => api.RespondToInquiryAsync(c["id"], c.Json, c.Caller, ct),
            (c, ct) => api.InquiryResourceAsync(c["id"], ct)),
        new("GET", "/api/v1/apikeys", RouteAuth.Credentials, Permissions.ApiKeyList, (c, ct) => api.ListApiKeysAsync(c.Request.Query, c.Caller, ct)),
        new("GET", "/api/v1/apikeys/{id}", RouteAuth.Credentials, Permissions.ApiKeyView, (c, ct) => api.GetApiKeyAsync(c["id"], c.Request.Query, c.Caller, ct),
            (c, ct) => api.ApiKeyResourceAsync(c["id"], ct)),
        new("POST", "/api/v1/apikeys", RouteAuth.Credentials, Permissions.ApiKeyCreate, (c, ct) => api.CreateApiKeyAsync(c.Json, c.Caller, ct)),
        new("PUT", "/api/v1/apikeys/{id}", RouteAuth.Credentials, Permissions.ApiKeyModify, (c, ct) => api.UpdateApiKeyAsync(c["id"], c.Json, c.Caller, ct),
            (c, ct) => api.ApiKeyResourceAsync(c["id"], ct)),
        new("DELETE", "/api/v1/apikeys/{id}", RouteAuth.Credentials, Permissions.ApiKeyDelete, (c, ct) => api.DeleteApiKeyAsync(c["id"], c.Caller, ct),
            (c, ct) => api.ApiKeyResourceAsync(c["id"], ct)),
        new("GET", "/api/v1/packs", RouteAuth.Credentials, Permissions.PackList, (c, ct) => api.ListPacksAsync(ct)),
        new("GET", "/api/v1/sensors", RouteAuth.Credentials, Permissions.SensorTypeList, (c, ct) => api.ListSensorsAsync(ct)),
        new("GET", "/api/v1/sensortypes", RouteAuth.Credentials, Permissions.SensorTypeList, (c, ct) => api.ListSensorsAsync(ct)),
        new("GET", "/api/v1/sensortypes/{ref}", RouteAuth.Credentials, Permissions.SensorTypeView, (c, ct) => api.GetSensorAsync(c["ref"], ct),
            (c, _) => Resource(StormApi.SensorResource(c["ref"]))),
        new("PUT", "/api/v1/sensortypes/{ref}", RouteAuth.Credentials, Permissions.SensorTypeModify, (c, ct) => api.UpdateSensorAsync(c["ref"], c.Json, ct),
            (c, _) => Resource(StormApi.SensorResource(c["ref"]))),
        new("GET", "/api/v1/deadletters", RouteAuth.Credentials, Permissions.DeadLetterList, (c, ct) => api.ListDeadLettersAsync(c.Request.Query, ct)),
        new("POST", "/api/v1/deadletters/replay", RouteAuth.Credentials, Permissions.DeadLetterReplay, (c, ct) => api.ReplayDeadLettersAsync(c.Json, c.Caller, ct)),
        new("POST", "/api/v1/audit/purge", RouteAuth.Credentials, Permissions.AuditPurge, (c, ct) => api.PurgeAuditAsync(c.Json, c.Caller, ct)),
        new("POST", "/auth/v1/tokens", RouteAuth.Password, Permissions.None, (c, ct) => api.CreateTokenAsync(c.Json, c.Caller, ct)),
    ];

    private static Task<ResourceRef?> Resource(ResourceRef? resource) => Task.FromResult(resource);

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;
}
