using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type http-request: sends one HTTP request (url, method, headers, body, timeout) and returns StackStorm's
/// result shape: status_code, headers, body (parsed when the response is JSON) and parsed. 2xx and 3xx succeed.
/// </summary>
public sealed class HttpRequestRunner : IActionRunner, IDisposable
{
    public const int DefaultTimeoutSeconds = 60;

    private const int MaxResponseChars = 1024 * 1024;

    private readonly HttpClient _client;

    public HttpRequestRunner(EgressGuard guard)
    {
        _client = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = guard.ConnectAsync,
            AllowAutoRedirect = true,
            MaxAutomaticRedirections = 5,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public string RunnerType => "http-request";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
    [
        ParameterReader.Define("url", "string", required: true, description: "Absolute http or https URL."),
        ParameterReader.Define("method", "string", defaultValue: "GET", allowed: ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        ParameterReader.Define("headers", "object", description: "Request headers."),
        ParameterReader.Define("body", "string|object|array", description: "A string is sent as text; an object or list as JSON."),
        ParameterReader.Define("timeout", "number", defaultValue: DefaultTimeoutSeconds, description: "Seconds to wait for the response."),
    ];

    public async Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        var parameters = context.Parameters;
        if (!Uri.TryCreate(ParameterReader.String(parameters, "url"), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            return RunnerResult.Failed([], $"parameter 'url' must be an absolute http(s) URL, got '{ParameterReader.String(parameters, "url")}'");
        }

        using var request = new HttpRequestMessage(new HttpMethod((ParameterReader.String(parameters, "method") ?? "GET").ToUpperInvariant()), url);
        request.Content = parameters["body"] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var text) => new StringContent(text, Encoding.UTF8, "text/plain"),
            var json => new StringContent(json.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (parameters["headers"] is JsonObject headers)
        {
            foreach (var (name, value) in headers)
            {
                var text = value is JsonValue hv && hv.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "";
                if (!request.Headers.TryAddWithoutValidation(name, text) && request.Content is not null)
                {
                    request.Content.Headers.Remove(name);
                    request.Content.Headers.TryAddWithoutValidation(name, text);
                }
            }
        }

        var timeout = TimeSpan.FromSeconds(ParameterReader.Number(parameters, "timeout") ?? DefaultTimeoutSeconds);
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            using var response = await _client.SendAsync(request, timeoutSource.Token);
            var text = await response.Content.ReadAsStringAsync(timeoutSource.Token);
            if (text.Length > MaxResponseChars)
            {
                text = text[..MaxResponseChars] + $"\n[… {text.Length - MaxResponseChars} more characters cut by ServerlessStorm]";
            }

            var (body, parsed) = ParseBody(text, response.Content.Headers.ContentType);
            var result = new JsonObject
            {
                ["status_code"] = (int)response.StatusCode,
                ["headers"] = Headers(response),
                ["body"] = body,
                ["parsed"] = parsed,
            };
            var code = (int)response.StatusCode;
            return code is >= 200 and < 400
                ? RunnerResult.Succeeded(result)
                : RunnerResult.Failed(result, $"the server answered {code} {response.ReasonPhrase}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new RunnerResult(ExecutionStatus.Timeout, [], $"no response from {url.Host} within {timeout.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException ex)
        {
            return RunnerResult.Failed([], (ex.InnerException as EgressRefusedException ?? ex).Message);
        }
    }

    public void Dispose() => _client.Dispose();

    private static (JsonNode? Body, bool Parsed) ParseBody(string text, MediaTypeHeaderValue? contentType)
    {
        if (contentType?.MediaType is { } media && (media.EndsWith("/json", StringComparison.OrdinalIgnoreCase) || media.EndsWith("+json", StringComparison.OrdinalIgnoreCase)))
        {
            try
            {
                return (JsonNode.Parse(text), true);
            }
            catch (JsonException)
            {
                // Not JSON after all: keep the text.
            }
        }

        return (text, false);
    }

    private static JsonObject Headers(HttpResponseMessage response)
    {
        var headers = new JsonObject();
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            headers[name] = string.Join(", ", values);
        }

        return headers;
    }
}
