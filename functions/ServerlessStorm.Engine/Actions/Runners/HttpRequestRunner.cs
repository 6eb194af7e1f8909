using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type http-request: sends one HTTP request (url, method, params, headers, body, basic or bearer auth, timeout, TLS
/// verification, redirects) through the <see cref="EgressGuard"/> and returns StackStorm's result shape:
/// status_code, headers, body (parsed when the response is JSON) and parsed. 2xx and 3xx succeed.
/// </summary>
public sealed class HttpRequestRunner : IActionRunner, IDisposable
{
    public const int DefaultTimeoutSeconds = 60;

    private const int MaxResponseChars = 1024 * 1024;

    private readonly EgressGuard _guard;

    // One client per egress policy and TLS setting: a pooled connection must never serve a request its pack could
    // not have opened.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, HttpClient> _clients = new(StringComparer.Ordinal);

    public HttpRequestRunner(EgressGuard guard) => _guard = guard;

    public string RunnerType => "http-request";

    public string? OutputKey => "body";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
    [
        ParameterReader.Define("url", "string", required: true, description: "Absolute http or https URL."),
        ParameterReader.Define("method", "string", defaultValue: "GET", allowed: ["HEAD", "GET", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PURGE"]) with { ActionDeclares = true },
        ParameterReader.Define("headers", "object", description: "Request headers."),
        ParameterReader.Define("body", "string|object|array", description: "A string is sent as text; an object or list as JSON.") with { ActionDeclares = true },
        ParameterReader.Define("params", "object", description: "Query string parameters, added to the URL (a string is added as it is).") with { ActionDeclares = true },
        ParameterReader.Define("username", "string", description: "User for basic authentication."),
        new ParameterDefinition("password", "string", false, null, true, false, "Password for basic authentication.", null, null),
        new ParameterDefinition("bearer_token", "string", false, null, true, false, "Token sent as 'Authorization: Bearer …' (a secret, unlike a header).", null, null),
        ParameterReader.Define("verify_ssl_cert", "boolean", defaultValue: true, description: "Check the server's TLS certificate."),
        ParameterReader.Define("allow_redirects", "boolean", defaultValue: true, description: "Follow redirects (each destination is checked like the first)."),
        ParameterReader.Define("timeout", "number", defaultValue: DefaultTimeoutSeconds, description: "Seconds to wait for the response.") with { ActionDeclares = true },
        // StackStorm's runner parameters, so its actions (core.http among them) load and mean the same here.
        ParameterReader.Define("cookies", "object", description: "Cookies to send with the request (a redirect is then answered, not followed)."),
        ParameterReader.Define("http_proxy", "string", description: "Not supported here: requests go straight to the server, through the egress guard."),
        ParameterReader.Define("https_proxy", "string", description: "Not supported here: requests go straight to the server, through the egress guard."),
        ParameterReader.Define("url_hosts_blacklist", "array", description: "Hosts the request may not go to (a redirect is then answered, not followed)."),
        ParameterReader.Define("url_hosts_whitelist", "array", description: "When given, the only hosts the request may go to (a redirect is then answered, not followed)."),
    ];

    // StackStorm's host lists (compared with the URL's host, without its port), and its proxies, which are refused here
    // rather than ignored: a proxy would hide the destination from the egress guard.
    private static string? HostRefusal(JsonObject parameters, Uri url)
    {
        if (ParameterReader.String(parameters, "http_proxy") is { Length: > 0 } || ParameterReader.String(parameters, "https_proxy") is { Length: > 0 })
        {
            return "http_proxy and https_proxy are not supported here: requests go straight to the server, through the egress guard";
        }

        static List<string>? Hosts(JsonNode? node) => node is JsonArray list
            ? [.. list.Select(h => (h as JsonValue)?.TryGetValue<string>(out var text) == true ? text.Trim().Trim('[', ']') : "")]
            : null;
        var blacklist = Hosts(parameters["url_hosts_blacklist"]);
        var whitelist = Hosts(parameters["url_hosts_whitelist"]);
        var host = url.IdnHost.Trim('[', ']');
        if (blacklist is { Count: > 0 } && whitelist is { Count: > 0 })
        {
            return "give url_hosts_blacklist or url_hosts_whitelist, not both";
        }

        if (blacklist?.Contains(host, StringComparer.OrdinalIgnoreCase) == true)
        {
            return $"host '{host}' is in url_hosts_blacklist";
        }

        return whitelist is { Count: > 0 } && !whitelist.Contains(host, StringComparer.OrdinalIgnoreCase)
            ? $"host '{host}' is not in url_hosts_whitelist"
            : null;
    }

    public async Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        var parameters = context.Parameters;
        if (!Uri.TryCreate(ParameterReader.String(parameters, "url"), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            return RunnerResult.Failed([], $"parameter 'url' must be an absolute http(s) URL, got '{ParameterReader.String(parameters, "url")}'");
        }

        if (HostRefusal(parameters, url) is { } refusal)
        {
            return RunnerResult.Failed([], refusal);
        }

        // An object's pairs are escaped; a string (StackStorm's examples.weather declares one) is added as it is.
        var added = parameters["params"] switch
        {
            JsonObject query when query.Count > 0 => query.Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value is JsonValue v && v.TryGetValue<string>(out var s) ? s : p.Value?.ToJsonString() ?? "")}").ToList(),
            JsonValue text when text.TryGetValue<string>(out var raw) && raw.TrimStart('?').Length > 0 => [raw.TrimStart('?')],
            _ => [],
        };
        if (added.Count > 0)
        {
            url = new UriBuilder(url) { Query = string.Join('&', (url.Query.Length > 1 ? [url.Query[1..]] : Array.Empty<string>()).Concat(added)) }.Uri;
        }

        using var request = new HttpRequestMessage(new HttpMethod((ParameterReader.String(parameters, "method") ?? "GET").ToUpperInvariant()), url);
        var bearer = ParameterReader.String(parameters, "bearer_token");
        if (ParameterReader.String(parameters, "username") is { } user)
        {
            if (bearer is not null)
            {
                return RunnerResult.Failed([], "give either 'username' and 'password' (basic authentication) or 'bearer_token', not both");
            }

            var credentials = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{ParameterReader.String(parameters, "password") ?? ""}"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", credentials);
        }
        else if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }
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

        if (parameters["cookies"] is JsonObject cookies && cookies.Count > 0)
        {
            request.Headers.TryAddWithoutValidation("Cookie", string.Join("; ", cookies.Select(c => $"{c.Key}={(c.Value is JsonValue cv && cv.TryGetValue<string>(out var text) ? text : c.Value?.ToJsonString())}")));
        }

        var timeout = TimeSpan.FromSeconds(ParameterReader.Number(parameters, "timeout") ?? DefaultTimeoutSeconds);
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            using var response = await Client(context, parameters).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeoutSource.Token);
            var text = await ReadBoundedAsync(response.Content, timeoutSource.Token);

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
        catch (HttpRequestException ex) when (Causes(ex).OfType<CertificateRefusedException>().FirstOrDefault() is { } refused)
        {
            var host = refused.Host.Length > 0 ? refused.Host : url.Host;
            return RunnerResult.Failed([], $"the TLS certificate of {host} was refused: {refused.Reason} (verify_ssl_cert: false skips the check)");
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.SecureConnectionError)
        {
            // Not the certificate (that is refused above): the server did not speak TLS, or not a version both know.
            var where = ParameterReader.Boolean(parameters, "allow_redirects") == false ? url.Host : $"{url.Host} (or a host it redirected to)";
            return RunnerResult.Failed([], $"no TLS connection to {where}: {Innermost(ex).Message} (is it an HTTPS server on that port?)");
        }
        catch (HttpRequestException ex)
        {
            return RunnerResult.Failed([], (ex.InnerException as EgressRefusedException ?? ex).Message);
        }
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values)
        {
            client.Dispose();
        }
    }

    private HttpClient Client(RunnerContext context, JsonObject parameters)
    {
        var networks = context.Pack?.AllowedNetworks ?? [];
        var verify = ParameterReader.Boolean(parameters, "verify_ssl_cert") != false;
        // Host lists and cookies hold for the URL given: a redirect could lead past a list, or carry the cookies to
        // another host, so with either the redirect is the answer rather than followed.
        var redirects = ParameterReader.Boolean(parameters, "allow_redirects") != false
            && parameters["url_hosts_blacklist"] is not JsonArray { Count: > 0 } && parameters["url_hosts_whitelist"] is not JsonArray { Count: > 0 }
            && parameters["cookies"] is not JsonObject { Count: > 0 };
        var key = $"{string.Join(",", networks)}|{verify}|{redirects}";
        return _clients.GetOrAdd(key, _ =>
        {
            var guard = _guard.With(networks);
            var handler = new SocketsHttpHandler
            {
                ConnectCallback = guard.ConnectAsync,

                // Straight to the destination: through a proxy (HTTP_PROXY and the like), the guard would check the
                // proxy's address and the proxy would reach whatever the action asked for.
                UseProxy = false,
                AllowAutoRedirect = redirects,
                MaxAutomaticRedirections = 5,
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            };
            // Checked here rather than left to .NET's check, so the error names the host whose certificate failed
            // (after a redirect, not the first one) and says why.
            handler.SslOptions.RemoteCertificateValidationCallback = verify ? RefuseInvalid : (_, _, _, _) => true;

            return new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        });
    }

    private static bool RefuseInvalid(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        var reasons = new List<string>();
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            reasons.Add("the server sent none");
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            reasons.Add("it is not issued for that host name");
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateChainErrors))
        {
            reasons.AddRange((chain?.ChainStatus ?? []).Select(s => s.Status).Where(s => s != X509ChainStatusFlags.NoError).Distinct().Select(status => status switch
            {
                X509ChainStatusFlags.UntrustedRoot => "it is signed by a root nobody here trusts (self-signed?)",
                X509ChainStatusFlags.PartialChain => "its issuer is not known here (an intermediate certificate missing?)",
                X509ChainStatusFlags.NotTimeValid => "it has expired or is not valid yet",
                X509ChainStatusFlags.Revoked => "it is revoked",
                _ => $"its chain does not verify ({status})",
            }));
        }

        // Thrown, not returned false, so that the request's error can name the host and the reasons.
        throw new CertificateRefusedException((sender as SslStream)?.TargetHostName ?? "", reasons.Count == 0 ? errors.ToString() : string.Join("; ", reasons));
    }

    private static IEnumerable<Exception> Causes(Exception ex)
    {
        for (Exception? cause = ex; cause is not null; cause = cause.InnerException)
        {
            yield return cause;
        }
    }

    private static Exception Innermost(Exception ex) => Causes(ex).Last();

    private sealed class CertificateRefusedException(string host, string reason) : Exception($"the TLS certificate of {host} was refused: {reason}")
    {
        public string Host { get; } = host;

        public string Reason { get; } = reason;
    }

    // The body up to the limit; the rest is not read at all, so a huge or endless response costs no memory.
    private static async Task<string> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var encoding = content.Headers.ContentType?.CharSet is { Length: > 0 } charset ? TryEncoding(charset.Trim('"')) : null;
        using var reader = new StreamReader(await content.ReadAsStreamAsync(cancellationToken), encoding ?? Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        var buffer = new char[MaxResponseChars + 1];
        var read = 0;
        int last;
        while (read < buffer.Length && (last = await reader.ReadAsync(buffer.AsMemory(read), cancellationToken)) > 0)
        {
            read += last;
        }

        return read > MaxResponseChars
            ? new string(buffer, 0, MaxResponseChars) + $"\n[… the rest cut by ServerlessStorm: a response is kept up to {MaxResponseChars} characters]"
            : new string(buffer, 0, read);
    }

    private static Encoding? TryEncoding(string name)
    {
        try
        {
            return Encoding.GetEncoding(name);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

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
