using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Cli.Client;

/// <summary>The API's answer as the client sees it.</summary>
public sealed record ApiReply(int StatusCode, JsonNode? Body)
{
    public bool IsSuccess => StatusCode is >= 200 and < 300;

    public string Fault => Body?["faultstring"]?.GetValue<string>() ?? Body?.ToJsonString() ?? $"HTTP {StatusCode}";
}

/// <summary>The API could not be reached.</summary>
public sealed class StormUnreachableException(string message, Exception inner) : Exception(message, inner);

/// <summary>How the client proves who it is: an API key or a token, and where it came from (for error messages).</summary>
public sealed record ClientCredential(string Header, string Value, string Source);

/// <summary>A small client of the local stack's HTTP API (StackStorm's paths), sending the caller's credential.</summary>
public sealed class StormClient : IDisposable
{
    public const string DefaultUrl = "http://127.0.0.1:9101";
    public const string UrlVariable = "STORM_API_URL";

    private readonly HttpClient _http;

    public StormClient(Uri baseUrl, ClientCredential? credential = null)
    {
        BaseUrl = baseUrl;
        Credential = credential;
        // No redirects: a redirect to another host would carry the key there.
        _http = new(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(baseUrl.ToString().TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };
        if (credential is not null)
        {
            _http.DefaultRequestHeaders.TryAddWithoutValidation(credential.Header, credential.Value);
        }
    }

    public Uri BaseUrl { get; }

    public ClientCredential? Credential { get; }

    public static Uri ResolveUrl(string? option) =>
        new(option ?? Environment.GetEnvironmentVariable(UrlVariable) ?? DefaultUrl, UriKind.Absolute);

    /// <summary>
    /// The credential to send, as st2's client finds one: an explicit key or token, then <c>STORM_AUTH_TOKEN</c> /
    /// <c>ST2_AUTH_TOKEN</c>, <c>STORM_API_KEY</c> / <c>ST2_API_KEY</c>, then the key <c>storm serve</c> filed for this
    /// very address. Null when there is none (the server will say so).
    /// </summary>
    public static ClientCredential? ResolveCredential(Uri api, string? apiKey = null, string? token = null)
    {
        if (token is { Length: > 0 })
        {
            return new ClientCredential("X-Auth-Token", token, "--token");
        }

        if (apiKey is { Length: > 0 })
        {
            return new ClientCredential("St2-Api-Key", apiKey, "--api-key");
        }

        // An Entra ID access token, e.g. from: az account get-access-token --resource api://serverlessstorm --query accessToken -o tsv
        if (Environment.GetEnvironmentVariable("STORM_BEARER_TOKEN") is { Length: > 0 } bearer)
        {
            return new ClientCredential("Authorization", "Bearer " + bearer, "$STORM_BEARER_TOKEN");
        }

        foreach (var name in new[] { "STORM_AUTH_TOKEN", "ST2_AUTH_TOKEN" })
        {
            if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } value)
            {
                return new ClientCredential("X-Auth-Token", value, "$" + name);
            }
        }

        foreach (var name in new[] { "STORM_API_KEY", "ST2_API_KEY" })
        {
            if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } value)
            {
                return new ClientCredential("St2-Api-Key", value, "$" + name);
            }
        }

        return CredentialsFile.Read(api) is { } filed ? new ClientCredential("St2-Api-Key", filed, CredentialsFile.DefaultPath) : null;
    }

    public Task<ApiReply> GetAsync(string path, CancellationToken cancellationToken) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, path), cancellationToken);

    public Task<ApiReply> SendJsonAsync(HttpMethod method, string path, string? json, CancellationToken cancellationToken) =>
        SendAsync(WithJson(new HttpRequestMessage(method, path), json), cancellationToken);

    public Task<ApiReply> PostJsonAsync(string path, string json, IEnumerable<KeyValuePair<string, string>>? headers, CancellationToken cancellationToken)
    {
        var request = WithJson(new HttpRequestMessage(HttpMethod.Post, path), json);
        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return SendAsync(request, cancellationToken);
    }

    private static HttpRequestMessage WithJson(HttpRequestMessage request, string? json)
    {
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        return request;
    }

    private async Task<ApiReply> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using (request)
        {
            try
            {
                using var response = await _http.SendAsync(request, cancellationToken);
                var text = await response.Content.ReadAsStringAsync(cancellationToken);
                JsonNode? body;
                try
                {
                    body = text.Length == 0 ? null : JsonNode.Parse(text);
                }
                catch (System.Text.Json.JsonException)
                {
                    body = JsonValue.Create(text);
                }

                var reply = new ApiReply((int)response.StatusCode, body);
                return reply.StatusCode == 401 ? reply with { Body = Explain401(reply) } : reply;
            }
            catch (HttpRequestException ex)
            {
                throw new StormUnreachableException($"cannot reach the ServerlessStorm API at {BaseUrl}: {ex.Message}. Is 'storm serve' running? (set --api or {UrlVariable})", ex);
            }
        }
    }

    // The server says what was wrong with the credential; the client adds where it came from and how to get one.
    private JsonNode Explain401(ApiReply reply) => new JsonObject
    {
        ["faultstring"] = Credential is null
            ? $"{reply.Fault} No API key was found for {BaseUrl}: set STORM_API_KEY (or ST2_API_KEY), or run 'storm serve' here, which files one in {CredentialsFile.DefaultPath}."
            : $"{reply.Fault} (the key or token came from {Credential.Source})",
    };

    public void Dispose() => _http.Dispose();
}
