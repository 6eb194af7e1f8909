using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

public sealed class HttpRequestRunnerTests : IDisposable
{
    private static readonly ActionDefinition Http = new("core", "http", "http-request", null, "", true,
        new HttpRequestRunner(new EgressGuard()).RunnerParameters.ToDictionary(p => p.Name), "http.yaml");

    private readonly HttpListener _listener = new();
    private readonly string _url;
    private readonly HttpRequestRunner _runner = new(new EgressGuard([System.Net.IPNetwork.Parse("127.0.0.0/8")]));
    private readonly HttpRequestRunner _guarded = new(new EgressGuard());
    private int _connections;

    public HttpRequestRunnerTests()
    {
        var port = AzuriteFixture.FreePort();
        _url = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(_url);
        _listener.Start();
    }

    [Fact]
    public async Task Post_SendsBodyAndHeaders_AndParsesTheJsonAnswer()
    {
        var served = ServeOnceAsync(201, """{"ok": true}""");

        var result = await RunAsync(new JsonObject
        {
            ["url"] = _url + "hook",
            ["method"] = "POST",
            ["headers"] = new JsonObject { ["X-Test"] = "yes" },
            ["body"] = new JsonObject { ["text"] = "hello" },
        });
        var request = await served;

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal(201, result.Result["status_code"]!.GetValue<int>());
        Assert.True(result.Result["parsed"]!.GetValue<bool>());
        Assert.True(result.Result["body"]!["ok"]!.GetValue<bool>());
        Assert.Equal("POST", request.Method);
        Assert.Equal("yes", request.Headers["X-Test"]);
        Assert.Equal("""{"text":"hello"}""", request.Body);
    }

    [Fact]
    public async Task Cookies_AreSent_AndStackStormsHostLists_AreEnforced_AndAProxyIsRefusedNotIgnored()
    {
        var served = ServeOnceAsync(200, "ok");
        var sent = await RunAsync(new JsonObject
        {
            ["url"] = _url + "c", ["cookies"] = new JsonObject { ["session"] = "abc", ["n"] = 1 }, ["url_hosts_whitelist"] = new JsonArray("127.0.0.1"),
        });
        var request = await served;

        var blacklisted = await RunAsync(new JsonObject { ["url"] = _url + "b", ["url_hosts_blacklist"] = new JsonArray("example.com", "127.0.0.1") });
        var notWhitelisted = await RunAsync(new JsonObject { ["url"] = _url + "w", ["url_hosts_whitelist"] = new JsonArray("example.com") });
        var both = await RunAsync(new JsonObject { ["url"] = _url, ["url_hosts_whitelist"] = new JsonArray("a"), ["url_hosts_blacklist"] = new JsonArray("b") });
        var proxied = await RunAsync(new JsonObject { ["url"] = _url, ["https_proxy"] = "http://10.10.1.10:3128" });

        Assert.Equal(ExecutionStatus.Succeeded, sent.Status);
        Assert.Equal("session=abc; n=1", request.Headers["Cookie"]);
        Assert.Equal((ExecutionStatus.Failed, "host '127.0.0.1' is in url_hosts_blacklist"), (blacklisted.Status, blacklisted.Error));
        Assert.Equal((ExecutionStatus.Failed, "host '127.0.0.1' is not in url_hosts_whitelist"), (notWhitelisted.Status, notWhitelisted.Error));
        Assert.Contains("not both", both.Error, StringComparison.Ordinal);
        Assert.Contains("not supported here", proxied.Error, StringComparison.Ordinal);
        Assert.Equal(1, _connections);
    }

    [Fact]
    public async Task Params_AsAnObject_AreEscapedPairs_AndAsAString_AreAddedAsTheyAre()
    {
        var first = ServeOnceAsync(200, "ok");
        await RunAsync(new JsonObject { ["url"] = _url + "q?a=1", ["params"] = new JsonObject { ["b"] = "x y" } });
        var second = ServeOnceAsync(200, "ok");
        // As an action that declares params a string passes it (the runner is handed the resolved parameters).
        await _runner.RunAsync(new RunnerContext("test", Http, new JsonObject { ["url"] = _url + "q", ["params"] = "units=metric&lang=en", ["timeout"] = 10 }, null), CancellationToken.None);

        Assert.Equal("?a=1&b=x%20y", (await first).Query);
        Assert.Equal("?units=metric&lang=en", (await second).Query);
    }

    [Fact]
    public async Task WithAHostListOrCookies_ARedirectIsTheAnswer_NotFollowedPastTheListOrWithTheCookies()
    {
        var redirected = RedirectOnceAsync("http://example.com/elsewhere");
        var result = await RunAsync(new JsonObject { ["url"] = _url + "r", ["url_hosts_whitelist"] = new JsonArray("127.0.0.1") });
        await redirected;

        // Followed, it would have gone to example.com, which the egress guard (and this machine) refuses.
        Assert.Equal(302, result.Result["status_code"]!.GetValue<int>());
        Assert.Equal("http://example.com/elsewhere", result.Result["headers"]!["Location"]!.GetValue<string>());
    }

    [Fact]
    public async Task ServerError_IsAFailureWithTheStatus()
    {
        _ = ServeOnceAsync(503, "down");

        var result = await RunAsync(new JsonObject { ["url"] = _url });

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Equal(503, result.Result["status_code"]!.GetValue<int>());
        Assert.Equal("down", result.Result["body"]!.GetValue<string>());
    }

    [Fact]
    public async Task SlowServer_TimesOut()
    {
        var result = await RunAsync(new JsonObject { ["url"] = _url + "slow", ["timeout"] = 0.3 });

        Assert.Equal(ExecutionStatus.Timeout, result.Status);
    }

    public static TheoryData<string> SsrfCorpus() =>
    [
        "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://0xA9FEA9FE/", "http://0xa9.0xfe.0xa9.0xfe/",
        "http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/", "http://169.254.169.254.nip.io.invalid/",
        "http://[fe80::1]/", "http://0.0.0.0:80/", "http://100.100.100.200/", "http://10.0.0.1/", "http://172.16.5.4/",
        "http://192.168.1.1/", "http://[fd00::1]/", "http://[fd00:ec2::254]/",
        "http://127.0.0.1:PORT/", "http://localhost:PORT/", "http://2130706433:PORT/", "http://0x7f000001:PORT/",
        "http://017700000001:PORT/", "http://127.1:PORT/", "http://[::1]:PORT/", "http://[::ffff:127.0.0.1]:PORT/",

        // IPv4 inside IPv6, reached through a translator or tunnel: NAT64, IPv4-compatible, 6to4, Teredo (client inverted).
        "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::169.254.169.254]/", "http://[::a9fe:a9fe]/", "http://[::7f00:1]:PORT/",
        "http://[2002:a9fe:a9fe::1]/", "http://[2001:0:4136:e378:8000:63bf:5601:5601]/", "http://[64:ff9b:1::a9fe:a9fe]/",

        // Multicast, broadcast, reserved, benchmarking, site-local, Oracle Cloud's metadata.
        "http://224.0.0.1/", "http://255.255.255.255/", "http://240.0.0.1/", "http://198.18.0.1/", "http://[fec0::1]/", "http://[ff02::1]/",
        "http://192.0.0.192/",
    ];

    [Theory]
    [MemberData(nameof(SsrfCorpus))]
    public async Task RefusedAddresses_InEverySpelling_AreRefusedAndNothingConnects(string url)
    {
        var port = new Uri(_url).Port;
        var result = await _guarded.RunAsync(new RunnerContext("test", Http,
            ParameterResolver.Resolve(Http, new JsonObject { ["url"] = url.Replace("PORT", port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal), ["timeout"] = 5 }), null),
            CancellationToken.None);

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.True(result.Error!.Contains("refused", StringComparison.Ordinal) || result.Error.Contains("No such host", StringComparison.OrdinalIgnoreCase)
            || result.Error.Contains("Name or service not known", StringComparison.OrdinalIgnoreCase), result.Error);
        Assert.Equal(0, Volatile.Read(ref _connections));
    }

    [Fact]
    public async Task AProxyFromTheEnvironment_IsNotUsed_SoItCannotCarryARequestPastTheGuard()
    {
        // Through a proxy the guard would see the proxy's (allowed) address, not the metadata service's.
        var proxy = HttpClient.DefaultProxy;
        HttpClient.DefaultProxy = new WebProxy(_url) { BypassProxyOnLocal = true };
        try
        {
            var pack = new PackDefinition("internal", "1", "", "/tmp") { AllowedNetworks = [System.Net.IPNetwork.Parse("127.0.0.0/8")] };
            var result = await _guarded.RunAsync(new RunnerContext("t", Http,
                ParameterResolver.Resolve(Http, new JsonObject { ["url"] = "http://169.254.169.254/latest/meta-data/", ["timeout"] = 5 }), null) { Pack = pack }, CancellationToken.None);

            Assert.Equal(ExecutionStatus.Failed, result.Status);
            Assert.Contains("169.254.169.254", result.Error);
            Assert.Contains("refused", result.Error);
        }
        finally
        {
            HttpClient.DefaultProxy = proxy;
        }
    }

    [Fact]
    public async Task PackConfiguration_CanAllowANetwork()
    {
        var served = ServeOnceAsync(200, "{}");
        var pack = new PackDefinition("internal", "1", "", "/tmp") { AllowedNetworks = [System.Net.IPNetwork.Parse("127.0.0.0/8")] };

        var allowed = await _guarded.RunAsync(new RunnerContext("t", Http, ParameterResolver.Resolve(Http, new JsonObject { ["url"] = _url }), null) { Pack = pack }, CancellationToken.None);
        await served;
        var refused = await _guarded.RunAsync(new RunnerContext("t", Http, ParameterResolver.Resolve(Http, new JsonObject { ["url"] = _url }), null), CancellationToken.None);

        Assert.Equal(ExecutionStatus.Succeeded, allowed.Status);
        Assert.Equal(ExecutionStatus.Failed, refused.Status);
        Assert.Contains("refused", refused.Error);
    }

    [Fact]
    public async Task Redirect_ToARefusedAddress_IsRefused()
    {
        var served = RedirectOnceAsync("http://169.254.169.254/latest/meta-data/");

        var result = await RunAsync(new JsonObject { ["url"] = _url + "go", ["timeout"] = 5 });
        await served;

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Contains("169.254.169.254", result.Error);
        Assert.Contains("refused", result.Error);
    }

    [Fact]
    public async Task QueryAndBasicAuth_AreSent()
    {
        var served = ServeOnceAsync(200, "{}");

        await RunAsync(new JsonObject { ["url"] = _url + "q?a=1", ["params"] = new JsonObject { ["b"] = "x y" }, ["username"] = "ops", ["password"] = "pw" });
        var request = await served;

        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:pw")), request.Headers["Authorization"]);
        Assert.Equal("?a=1&b=x%20y", request.Query);
    }

    [Fact]
    public async Task Redirect_ToAnAllowedAddress_IsFollowed()
    {
        var served = Task.Run(async () =>
        {
            await RedirectOnceAsync(_url + "final");
            return await ServeOnceAsync(200, """{"arrived": true}""");
        });

        var result = await RunAsync(new JsonObject { ["url"] = _url + "go", ["timeout"] = 5 });
        var final = await served;

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.True(result.Result["body"]!["arrived"]!.GetValue<bool>());
        Assert.Equal("GET", final.Method);
    }

    [Fact]
    public async Task Cancellation_StopsARequestWaitingForItsAnswer()
    {
        // Nothing answers: only the cancel can end it, long before its 60 s timeout.
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            _runner.RunAsync(new RunnerContext("test", Http, ParameterResolver.Resolve(Http, new JsonObject { ["url"] = _url + "never" }), null), cancel.Token));
    }

    [Fact]
    public async Task BearerToken_IsSent_AndIsASecret()
    {
        var served = ServeOnceAsync(200, "{}");

        var result = await RunAsync(new JsonObject { ["url"] = _url, ["bearer_token"] = "tok-123" });
        var request = await served;

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal("Bearer tok-123", request.Headers["Authorization"]);
        Assert.True(Http.Parameters["bearer_token"].Secret);
    }

    [Fact]
    public async Task BasicAndBearerTogether_AreRefusedBeforeAnythingIsSent()
    {
        var result = await RunAsync(new JsonObject { ["url"] = _url, ["username"] = "ops", ["password"] = "pw", ["bearer_token"] = "tok" });

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Contains("not both", result.Error);
        Assert.Equal(0, Volatile.Read(ref _connections));
    }

    [Fact]
    public async Task AResponseBeyondTheLimit_IsCutWithAMarker_WithoutReadingTheRest()
    {
        _ = ServeOnceAsync(200, new string('a', 3 * 1024 * 1024));

        var result = await RunAsync(new JsonObject { ["url"] = _url, ["timeout"] = 30 });

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        var body = result.Result["body"]!.GetValue<string>();
        Assert.Equal(new string('a', 1024 * 1024), body[..(1024 * 1024)]);
        Assert.EndsWith("[… the rest cut by ServerlessStorm: a response is kept up to 1048576 characters]", body);
    }

    [Fact]
    public async Task AnUntrustedCertificate_IsRefusedBeforeTheRequestIsSent_WithTheReasonNamed()
    {
        using var server = new SelfSignedHttpsServer();

        var result = await RunAsync(new JsonObject { ["url"] = server.Url, ["timeout"] = 10 });

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Equal("the TLS certificate of 127.0.0.1 was refused: it is signed by a root nobody here trusts (self-signed?) (verify_ssl_cert: false skips the check)", result.Error);
        Assert.Equal(0, server.RequestsRead);
    }

    [Fact]
    public async Task AfterARedirect_TheRefusedCertificateIsNamedByItsOwnHost()
    {
        using var server = new SelfSignedHttpsServer(IPAddress.Parse("127.0.0.2"));
        _ = RedirectOnceAsync(server.Url);

        var result = await RunAsync(new JsonObject { ["url"] = _url, ["timeout"] = 10 });

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.StartsWith("the TLS certificate of 127.0.0.2 was refused: ", result.Error);
        Assert.Equal(0, server.RequestsRead);
    }

    [Fact]
    public async Task HttpsToAPlainHttpServer_IsNotCalledACertificateProblem()
    {
        _ = ServeOnceAsync(200, "plain");

        var result = await RunAsync(new JsonObject { ["url"] = _url.Replace("http://", "https://", StringComparison.Ordinal), ["timeout"] = 10 });

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.StartsWith("no TLS connection to 127.0.0.1 (or a host it redirected to): ", result.Error);
        Assert.EndsWith("(is it an HTTPS server on that port?)", result.Error);
        Assert.DoesNotContain("certificate", result.Error, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task VerifySslCertFalse_AcceptsTheSameServer()
    {
        using var server = new SelfSignedHttpsServer();

        var result = await RunAsync(new JsonObject { ["url"] = server.Url, ["verify_ssl_cert"] = false, ["timeout"] = 10 });

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.True(result.Result["body"]!["tls"]!.GetValue<bool>());
        Assert.Equal(1, server.RequestsRead);
    }

    private Task<RunnerResult> RunAsync(JsonObject parameters) =>
        _runner.RunAsync(new RunnerContext("test", Http, ParameterResolver.Resolve(Http, parameters), null), CancellationToken.None);

    private async Task RedirectOnceAsync(string location)
    {
        var context = await _listener.GetContextAsync();
        context.Response.StatusCode = 302;
        context.Response.RedirectLocation = location;
        context.Response.Close();
    }

    private async Task<(string Method, WebHeaderCollection Headers, string Body, string Query)> ServeOnceAsync(int status, string body)
    {
        var context = await _listener.GetContextAsync();
        Interlocked.Increment(ref _connections);
        using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
        var received = await reader.ReadToEndAsync();
        context.Response.StatusCode = status;
        context.Response.ContentType = body.StartsWith('{') ? "application/json" : "text/plain";
        var bytes = Encoding.UTF8.GetBytes(body);
        await context.Response.OutputStream.WriteAsync(bytes);
        context.Response.Close();
        return (context.Request.HttpMethod, (WebHeaderCollection)context.Request.Headers, received, context.Request.Url!.Query);
    }

    public void Dispose()
    {
        _listener.Close();
        _runner.Dispose();
        _guarded.Dispose();
    }
}

// HTTPS with a certificate nobody trusts, on a plain socket: HttpListener cannot serve TLS on Linux.
internal sealed class SelfSignedHttpsServer : IDisposable
{
    private readonly System.Net.Sockets.TcpListener _listener;
    private readonly X509Certificate2 _certificate;
    private readonly CancellationTokenSource _stop = new();
    private int _requestsRead;

    public SelfSignedHttpsServer(IPAddress? address = null)
    {
        _listener = new(address ?? IPAddress.Loopback, 0);
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        _certificate = X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
        _listener.Start();
        Url = $"https://{address ?? IPAddress.Loopback}:{((IPEndPoint)_listener.LocalEndpoint).Port}/";
        _ = ServeAsync();
    }

    public string Url { get; }

    public int RequestsRead => Volatile.Read(ref _requestsRead);

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            System.Net.Sockets.TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using (client)
                await using (var tls = new SslStream(client.GetStream()))
                {
                    try
                    {
                        await tls.AuthenticateAsServerAsync(_certificate);
                        using var reader = new StreamReader(tls, Encoding.ASCII, leaveOpen: true);
                        if (await reader.ReadLineAsync() is not { Length: > 0 })
                        {
                            return;
                        }

                        while (await reader.ReadLineAsync() is { Length: > 0 })
                        {
                        }

                        Interlocked.Increment(ref _requestsRead);
                        var body = """{"tls": true}""";
                        await tls.WriteAsync(Encoding.ASCII.GetBytes(
                            $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
                    }
                    catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException)
                    {
                        // The client refused the certificate: nothing was read.
                    }
                }
            });
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _certificate.Dispose();
        _stop.Dispose();
    }
}
