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

/// <summary>A small client of the local stack's HTTP API (StackStorm's paths).</summary>
public sealed class StormClient(Uri baseUrl) : IDisposable
{
    public const string DefaultUrl = "http://127.0.0.1:9101";
    public const string UrlVariable = "STORM_API_URL";

    private readonly HttpClient _http = new() { BaseAddress = new Uri(baseUrl.ToString().TrimEnd('/') + "/"), Timeout = TimeSpan.FromSeconds(30) };

    public Uri BaseUrl { get; } = baseUrl;

    public static Uri ResolveUrl(string? option) =>
        new(option ?? Environment.GetEnvironmentVariable(UrlVariable) ?? DefaultUrl, UriKind.Absolute);

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

                return new ApiReply((int)response.StatusCode, body);
            }
            catch (HttpRequestException ex)
            {
                throw new StormUnreachableException($"cannot reach the ServerlessStorm API at {BaseUrl}: {ex.Message}. Is 'storm serve' running? (set --api or {UrlVariable})", ex);
            }
        }
    }

    public void Dispose() => _http.Dispose();
}
