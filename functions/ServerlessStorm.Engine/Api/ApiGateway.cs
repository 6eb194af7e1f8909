using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Engine.Api;

/// <summary>What a browser may do with the API (configuration section <c>Storm:Api</c>).</summary>
public sealed class ApiOptions
{
    public const string Section = "Storm:Api";

    /// <summary>
    /// Origins (<c>https://host:port</c>) whose pages may call the API; every other request that carries an
    /// <c>Origin</c> is refused, and no CORS header is sent unless the origin is listed here.
    /// </summary>
    public IList<string> AllowedOrigins { get; } = [];

    /// <summary>
    /// The names (<c>host:port</c> as in the <c>Host</c> header) the server answers to; a request naming another is
    /// refused, so a DNS name rebound to a loopback address reaches nothing. Empty: any (the platform checks it).
    /// </summary>
    public IList<string> AllowedHosts { get; } = [];
}

/// <summary>
/// The API's front door, the same for every host: keeps browsers out (foreign <c>Origin</c>, cross-site fetches,
/// a <c>Host</c> that is not this server, form posts), finds the route, authenticates the caller, parses the JSON body
/// and calls the route's handler. A host turns its HTTP request into an <see cref="ApiRequest"/> and writes back the
/// <see cref="ApiResponse"/>; it adds nothing else.
/// </summary>
public sealed class ApiGateway
{
    private readonly IReadOnlyList<ApiRoute> _routes;
    private readonly ApiAuthenticator _authenticator;
    private readonly StormApi _api;
    private readonly Security.Rbac.AccessPolicy _access;
    private readonly ApiOptions _options;
    private readonly ILogger<ApiGateway> _logger;

    public ApiGateway(StormApi api, ApiAuthenticator authenticator, Security.Rbac.AccessPolicy access, IOptions<ApiOptions> options, ILogger<ApiGateway> logger)
    {
        _routes = ApiRoutes.For(api);
        _api = api;
        _authenticator = authenticator;
        _access = access;
        _options = options.Value;
        _logger = logger;
    }

    public async Task<ApiResponse> HandleAsync(ApiRequest request, CancellationToken cancellationToken)
    {
        var origin = request.Header("Origin");
        var response = await RouteAsync(request, origin, cancellationToken);
        var headers = new Dictionary<string, string>(response.Headers, StringComparer.OrdinalIgnoreCase)
        {
            ["X-Content-Type-Options"] = "nosniff",
            ["Cache-Control"] = "no-store",
        };
        if (origin is not null && IsAllowedOrigin(origin))
        {
            headers["Access-Control-Allow-Origin"] = origin;
            headers["Vary"] = "Origin";
        }

        return response with { Headers = headers };
    }

    private async Task<ApiResponse> RouteAsync(ApiRequest request, string? origin, CancellationToken cancellationToken)
    {
        if (BrowserRefusal(request, origin) is { } refusal)
        {
            _logger.ApiRequestRefused(request.Method, request.Path, refusal.StatusCode, Fault(refusal));
            return refusal;
        }

        var path = request.Path.Split('?')[0].TrimEnd('/').TrimStart('/').Split('/');
        var candidates = _routes.Select(r => (Route: r, Matched: r.TryMatch(path, out var values), Values: values)).Where(m => m.Matched).ToList();
        if (request.Method == "OPTIONS")
        {
            return Preflight(origin, candidates.Select(c => c.Route.Method));
        }

        var match = candidates.FirstOrDefault(c => c.Route.Method == request.Method);
        // Nothing is told to a caller who has not proven who they are, not even which paths exist.
        var hook = match.Route?.Auth == RouteAuth.Webhook ? match.Values["hook"] : null;
        var outcome = await _authenticator.AuthenticateAsync(request, match.Route?.Auth ?? RouteAuth.Credentials, cancellationToken, hook);
        if (outcome.Caller is not { } caller)
        {
            _logger.ApiRequestUnauthenticated(request.Method, request.Path, outcome.Failure!);
            if (outcome.RecordRefusal)
            {
                return await _api.RefuseWebhookAsync(hook!, request.Headers, request.Body, outcome.Failure!, cancellationToken);
            }

            var fault = ApiResponse.Fault(401, outcome.Failure!);
            return match.Route?.Auth == RouteAuth.Password
                ? fault with { Headers = new Dictionary<string, string> { ["WWW-Authenticate"] = "Basic realm=\"ServerlessStorm\"" } }
                : fault;
        }

        if (match.Route is not { } route)
        {
            return candidates.Count > 0
                ? ApiResponse.Fault(405, $"{request.Method} is not allowed on {request.Path} (allowed: {string.Join(", ", candidates.Select(c => c.Route.Method).Distinct())})")
                : ApiResponse.Fault(404, $"no API route {request.Method} {request.Path}");
        }

        JsonNode? json = null;
        if (route.TakesJson && request.Body.Length > 0)
        {
            if (!IsJson(request.Header("Content-Type")))
            {
                return ApiResponse.Fault(415, $"send the body as JSON with Content-Type: application/json (got {request.Header("Content-Type") ?? "none"})");
            }

            try
            {
                json = JsonNode.Parse(request.Body.Span);
            }
            catch (JsonException ex)
            {
                return ApiResponse.Fault(400, $"the body is not valid JSON: {ex.Message}");
            }
        }

        var call = new ApiCall(request, match.Values, caller, json) { DeliveryId = outcome.DeliveryId };
        // A verified signature is the hook's own declaration of who may send to it: no role is asked for.
        if (route.Permission.Length > 0 && caller.Method != Caller.BySignature)
        {
            // A route on a resource is checked against it; one whose resource is not there (yet) leaves the answer to
            // its handler, which says 400 or 404 — and one with no way to find its resource is for system roles only.
            var resource = route.Resource is null ? null : await route.Resource(call, cancellationToken);
            if ((Permissions.Global.Contains(route.Permission) || route.Resource is null || resource is not null)
                && _access.Denial(caller.User, route.Permission, resource) is { } denial)
            {
                return ApiResponse.Fault(403, denial);
            }
        }

        try
        {
            return await route.Handle(call, cancellationToken);
        }
        catch (CredentialException ex)
        {
            return ApiResponse.Fault(ex.Status, ex.Message);
        }
    }

    /// <summary>Why a browser's request is refused before anything else is looked at, or null.</summary>
    private ApiResponse? BrowserRefusal(ApiRequest request, string? origin)
    {
        if (_options.AllowedHosts.Count > 0 && !_options.AllowedHosts.Contains(request.Header("Host") ?? "", StringComparer.OrdinalIgnoreCase))
        {
            return ApiResponse.Fault(400, $"Host '{request.Header("Host")}' is not a name of this server (allowed: {string.Join(", ", _options.AllowedHosts)}; add one with Storm:Api:AllowedHosts)");
        }

        if (origin is not null && !IsAllowedOrigin(origin))
        {
            return ApiResponse.Fault(403, $"cross-origin requests are refused: Origin '{origin}' is not in Storm:Api:AllowedOrigins");
        }

        // A browser that sends no Origin (a navigation, an image) still says where the request comes from.
        if (origin is null && request.Header("Sec-Fetch-Site") is "cross-site" or "same-site")
        {
            return ApiResponse.Fault(403, $"cross-site requests are refused (Sec-Fetch-Site: {request.Header("Sec-Fetch-Site")})");
        }

        return null;
    }

    private ApiResponse Preflight(string? origin, IEnumerable<string> methods) =>
        origin is not null && IsAllowedOrigin(origin)
            ? new ApiResponse(204, null)
            {
                Headers = new Dictionary<string, string>
                {
                    ["Access-Control-Allow-Methods"] = string.Join(", ", methods.Distinct()),
                    ["Access-Control-Allow-Headers"] = $"Content-Type, {ApiAuthenticator.ApiKeyHeader}, {ApiAuthenticator.TokenHeader}, Authorization, st2-trace-tag",
                    ["Access-Control-Max-Age"] = "600",
                },
            }
            : ApiResponse.Fault(403, "CORS is not enabled for this origin (Storm:Api:AllowedOrigins)");

    private bool IsAllowedOrigin(string origin) => _options.AllowedOrigins.Contains(origin.TrimEnd('/'), StringComparer.OrdinalIgnoreCase);

    private static bool IsJson(string? contentType)
    {
        var mediaType = contentType?.Split(';')[0].Trim();
        return mediaType is not null && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }

    private static string Fault(ApiResponse response) => response.Body?["faultstring"]?.GetValue<string>() ?? "";
}
