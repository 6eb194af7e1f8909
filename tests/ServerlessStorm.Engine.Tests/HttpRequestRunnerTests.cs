using System.Net;
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
    private static readonly ActionDefinition Http = new("core", "http", "http-request", null, "", true, new Dictionary<string, ParameterDefinition>
    {
        ["url"] = new("url", "string", true, null, false, false, null, null, null),
        ["method"] = new("method", "string", false, JsonValue.Create("GET"), false, false, null, null, null),
        ["headers"] = new("headers", "object", false, null, false, false, null, null, null),
        ["body"] = new("body", "string|object|array", false, null, false, false, null, null, null),
        ["timeout"] = new("timeout", "number", false, JsonValue.Create(60), false, false, null, null, null),
    }, "http.yaml");

    private readonly HttpListener _listener = new();
    private readonly string _url;
    private readonly HttpRequestRunner _runner = new(new EgressGuard());

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

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/")]
    [InlineData("http://[::ffff:169.254.169.254]/")]
    [InlineData("http://[fe80::1]/")]
    [InlineData("http://0.0.0.0:80/")]
    public async Task MetadataAndLinkLocalAddresses_AreRefusedBeforeConnecting(string url)
    {
        var result = await RunAsync(new JsonObject { ["url"] = url, ["timeout"] = 5 });

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Contains("refused", result.Error);
    }

    private Task<RunnerResult> RunAsync(JsonObject parameters) =>
        _runner.RunAsync(new RunnerContext("test", Http, ParameterResolver.Resolve(Http, parameters), null), CancellationToken.None);

    private async Task<(string Method, WebHeaderCollection Headers, string Body)> ServeOnceAsync(int status, string body)
    {
        var context = await _listener.GetContextAsync();
        using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
        var received = await reader.ReadToEndAsync();
        context.Response.StatusCode = status;
        context.Response.ContentType = body.StartsWith('{') ? "application/json" : "text/plain";
        var bytes = Encoding.UTF8.GetBytes(body);
        await context.Response.OutputStream.WriteAsync(bytes);
        context.Response.Close();
        return (context.Request.HttpMethod, (WebHeaderCollection)context.Request.Headers, received);
    }

    public void Dispose()
    {
        _listener.Close();
        _runner.Dispose();
    }
}
