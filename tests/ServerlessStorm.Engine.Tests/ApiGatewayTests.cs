using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// The API's front door as every host serves it: nobody gets in without a credential, and a browser tab gets
/// nowhere — the cross-site request that used to run a command, a form post and a rebinding Host run nothing.
/// </summary>
public sealed class ApiGatewayTests : IAsyncLifetime
{
    private const string Host = "127.0.0.1:9101";

    private readonly InMemoryAuditStore _audit = new();
    private readonly InMemoryMessageBus _bus = new(new BusOptions { RetryDelay = TimeSpan.FromMilliseconds(50) });
    private readonly string _marker = Path.Combine(Path.GetTempPath(), $"storm-gateway-{Guid.NewGuid():N}");
    private StormTestHost _host = null!;
    private string _key = "";

    public async Task InitializeAsync()
    {
        // Authentication alone: RBAC is off here (every authenticated user may do everything), as in StackStorm without it.
        _host = await StormTestHost.StartAsync(_audit, _bus, configure: services =>
        {
            services.Configure<ApiOptions>(o =>
            {
                o.AllowedHosts.Add(Host);
                o.AllowedOrigins.Add("https://console.example.net");
            });
            services.Configure<Security.Rbac.RbacOptions>(o => o.Enabled = false);
        });
        _key = (await Credentials.CreateApiKeyAsync("st2admin", null, CancellationToken.None)).Key;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        File.Delete(_marker);
    }

    private ApiGateway Gateway => _host.Services.GetRequiredService<ApiGateway>();

    private CredentialService Credentials => _host.Services.GetRequiredService<CredentialService>();

    private static ApiRequest Request(string method, string path, string? body = null, params (string Name, string Value)[] headers) => new()
    {
        Method = method,
        Path = path.Split('?')[0],
        Query = path.Contains('?')
            ? path.Split('?')[1].Split('&').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => (string?)Uri.UnescapeDataString(p[1]))
            : new Dictionary<string, string?>(),
        Headers = [KeyValuePair.Create("Host", Host), .. headers.Select(h => KeyValuePair.Create(h.Name, h.Value))],
        Body = Encoding.UTF8.GetBytes(body ?? ""),
    };

    private string RunTouch => new JsonObject { ["action"] = "core.local", ["parameters"] = new JsonObject { ["cmd"] = $"touch {_marker}" } }.ToJsonString();

    /// <summary>
    /// Nothing ran: an accepted request records its execution before it is answered, so once the answer is in, no
    /// execution recorded means none will run; and the command's file is not there.
    /// </summary>
    private async Task AssertNothingRanAsync()
    {
        Assert.False(File.Exists(_marker), "the command ran");
        Assert.Empty(await _audit.QueryExecutionsAsync(new AuditQuery(null, null, null, 100), CancellationToken.None));
    }

    public static TheoryData<string, string> EveryRoute()
    {
        var data = new TheoryData<string, string>();
        foreach (var route in ApiRoutes.For(null!))
        {
            data.Add(route.Method, route.Template);
        }

        return data;
    }

    // Routes are enumerated from the one route table, so a new route without authentication fails here.
    [Theory]
    [MemberData(nameof(EveryRoute))]
    public async Task EveryRoute_RefusesARequestWithoutCredentials_OrWithWrongOnes(string method, string template)
    {
        var path = template.Replace("{**hook}", "hello", StringComparison.Ordinal).Replace("{id}", "5f0000000000000000000000", StringComparison.Ordinal)
            .Replace("{name}", "some_key", StringComparison.Ordinal).Replace("{traceTag}", "t1", StringComparison.Ordinal);
        const string body = """{"action": "core.noop", "value": "v", "response": {"continue": true}, "enabled": true}""";

        var none = await Gateway.HandleAsync(Request(method, path, body, ("Content-Type", "application/json")), CancellationToken.None);
        var wrongKey = await Gateway.HandleAsync(Request(method, path, body, ("Content-Type", "application/json"), ("St2-Api-Key", _key + "x")), CancellationToken.None);
        var wrongToken = await Gateway.HandleAsync(Request(method, path, body, ("Content-Type", "application/json"), ("X-Auth-Token", "0123456789abcdef0123456789abcdef")), CancellationToken.None);
        var wrongPassword = await Gateway.HandleAsync(Request(method, path, body, ("Content-Type", "application/json"), ("Authorization", "Basic " + Convert.ToBase64String("st2admin:guess"u8.ToArray()))), CancellationToken.None);

        Assert.All([none, wrongKey, wrongToken, wrongPassword], r => Assert.Equal(401, r.StatusCode));
        Assert.StartsWith("Unauthorized", none.Body!["faultstring"]!.GetValue<string>().Replace("Invalid or missing credentials", "Unauthorized", StringComparison.Ordinal));
        await AssertNothingRanAsync();
    }

    [Fact]
    public async Task UnknownPaths_AreAlso401_SoNothingIsToldBeforeTheCallerIsKnown()
    {
        var response = await Gateway.HandleAsync(Request("GET", "/api/v1/no-such-thing"), CancellationToken.None);
        var known = await Gateway.HandleAsync(Request("GET", "/api/v1/no-such-thing", null, ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(401, response.StatusCode);
        Assert.Equal(404, known.StatusCode);
    }

    [Fact]
    public async Task TheCrossSiteRequestThatUsedToRunACommand_RunsNothing()
    {
        // What any web page can send without a preflight: text/plain, its own Origin, no credentials.
        var response = await Gateway.HandleAsync(Request("POST", "/api/v1/executions", RunTouch, ("Content-Type", "text/plain"), ("Origin", "https://evil.example")), CancellationToken.None);

        Assert.Equal(403, response.StatusCode);
        Assert.Contains("Origin 'https://evil.example' is not in Storm:Api:AllowedOrigins", response.Body!["faultstring"]!.GetValue<string>());
        await AssertNothingRanAsync();
    }

    [Fact]
    public async Task AForeignOrigin_IsRefusedEvenWithAValidKey_AndGetsNoCorsHeaders()
    {
        var response = await Gateway.HandleAsync(Request("POST", "/api/v1/executions", RunTouch, ("Content-Type", "application/json"), ("Origin", "null"), ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(403, response.StatusCode);
        Assert.False(response.Headers.ContainsKey("Access-Control-Allow-Origin"));
        await AssertNothingRanAsync();
    }

    [Fact]
    public async Task AFormPost_RunsNothing_WhetherItSaysWhereItComesFromOrNot()
    {
        var form = "action=core.local&parameters=" + Uri.EscapeDataString($"{{\"cmd\": \"touch {_marker}\"}}");

        var crossSite = await Gateway.HandleAsync(Request("POST", "/api/v1/executions", form, ("Content-Type", "application/x-www-form-urlencoded"), ("Sec-Fetch-Site", "cross-site")), CancellationToken.None);
        // Even a form carrying a stolen key in the query is refused: API writes take JSON, and keys go in headers.
        var withKeyInQuery = await Gateway.HandleAsync(Request("POST", $"/api/v1/executions?st2-api-key={_key}", form, ("Content-Type", "application/x-www-form-urlencoded")), CancellationToken.None);
        var withKeyHeader = await Gateway.HandleAsync(Request("POST", "/api/v1/executions", form, ("Content-Type", "application/x-www-form-urlencoded"), ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(403, crossSite.StatusCode);
        Assert.Equal(401, withKeyInQuery.StatusCode);
        Assert.Equal(415, withKeyHeader.StatusCode);
        Assert.Contains("Content-Type: application/json", withKeyHeader.Body!["faultstring"]!.GetValue<string>());
        await AssertNothingRanAsync();
    }

    [Theory]
    [InlineData("rebound.evil.example:9101")]
    [InlineData("127.0.0.1:9102")]
    [InlineData("")]
    public async Task ARebindingHost_RunsNothing(string host)
    {
        var request = Request("POST", "/api/v1/executions", RunTouch, ("Content-Type", "application/json"), ("St2-Api-Key", _key));
        request = new ApiRequest
        {
            Method = request.Method,
            Path = request.Path,
            Headers = [KeyValuePair.Create("Host", host), .. request.Headers.Where(h => h.Key != "Host")],
            Body = request.Body,
        };

        var response = await Gateway.HandleAsync(request, CancellationToken.None);

        Assert.Equal(400, response.StatusCode);
        Assert.Contains("is not a name of this server", response.Body!["faultstring"]!.GetValue<string>());
        await AssertNothingRanAsync();
    }

    [Fact]
    public async Task AnAllowedOrigin_GetsItsPreflightAndCorsHeaders_AnotherGetsNeither()
    {
        var allowed = await Gateway.HandleAsync(Request("OPTIONS", "/api/v1/executions", null, ("Origin", "https://console.example.net")), CancellationToken.None);
        var other = await Gateway.HandleAsync(Request("OPTIONS", "/api/v1/executions", null, ("Origin", "https://evil.example")), CancellationToken.None);
        var call = await Gateway.HandleAsync(Request("GET", "/api/v1/executions", null, ("Origin", "https://console.example.net"), ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(204, allowed.StatusCode);
        Assert.Equal("https://console.example.net", allowed.Headers["Access-Control-Allow-Origin"]);
        Assert.Contains("St2-Api-Key", allowed.Headers["Access-Control-Allow-Headers"]);
        Assert.Equal(403, other.StatusCode);
        Assert.False(other.Headers.ContainsKey("Access-Control-Allow-Origin"));
        Assert.Equal(200, call.StatusCode);
        Assert.Equal("https://console.example.net", call.Headers["Access-Control-Allow-Origin"]);
    }

    [Fact]
    public async Task AValidKey_RunsTheAction_AsTheKeysUser()
    {
        var response = await Gateway.HandleAsync(Request("POST", "/api/v1/executions", RunTouch, ("Content-Type", "application/json; charset=utf-8"), ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(201, response.StatusCode);
        await _host.WaitForExecutionAsync(response.Body!["id"]!.GetValue<string>());
        Assert.True(File.Exists(_marker));
    }

    [Fact]
    public async Task QueryCredentials_AreTakenByWebhooksOnly_AndNeverReachThePayload()
    {
        var hook = await Gateway.HandleAsync(Request("POST", $"/api/v1/webhooks/hello?st2-api-key={_key}", """{"name": "query"}""", ("Content-Type", "application/json")), CancellationToken.None);
        var withHeader = await Gateway.HandleAsync(Request("POST", "/api/v1/webhooks/hello", """{"name": "header"}""", ("St2-Api-Key", _key), ("Cookie", "auth-token=abc"),
            ("X-Gitlab-Token", "gitlab-shared-secret"), ("X-MS-TOKEN-AAD-ACCESS-TOKEN", "eyJ0"), ("X-Event", "push")), CancellationToken.None);
        var api = await Gateway.HandleAsync(Request("GET", $"/api/v1/executions?st2-api-key={_key}"), CancellationToken.None);

        Assert.Equal(202, hook.StatusCode);
        Assert.Equal(202, withHeader.StatusCode);
        Assert.Equal(401, api.StatusCode);
        var instance = await Eventually.ReturnsAsync(() => _audit.GetTraceAsync(withHeader.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None), t => t.TriggerInstances.Count > 0);
        var headers = instance.TriggerInstances[0].Payload!["headers"]!.AsObject();
        Assert.Equal(["Host", "X-Event"], headers.Select(h => h.Key).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(_key, headers.ToJsonString());
    }

    [Theory]
    [InlineData("POST", "/api/v1/executions", "[1]")]
    [InlineData("PUT", "/api/v1/keys/x", "\"s\"")]
    [InlineData("PUT", "/api/v1/keys/x", """{"value": "v", "ttl": 1e300}""")]
    [InlineData("POST", "/api/v1/apikeys", "[]")]
    [InlineData("POST", "/api/v1/executions/5f0000000000000000000000/re_run", "3")]
    public async Task BodiesOfTheWrongShape_Get400_Not500(string method, string path, string body)
    {
        var response = await Gateway.HandleAsync(Request(method, path, body, ("Content-Type", "application/json"), ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(400, response.StatusCode);
    }

    [Fact]
    public async Task ADisabledKey_IsRefused_AndLetInAgainWhenEnabled_AtOnceOnThisInstance()
    {
        var (record, key) = await Credentials.CreateApiKeyAsync("ci", null, CancellationToken.None);
        var get = () => Gateway.HandleAsync(Request("GET", "/api/v1/executions", null, ("St2-Api-Key", key)), CancellationToken.None);

        var before = await get();
        var disable = await Gateway.HandleAsync(Request("PUT", $"/api/v1/apikeys/{record.Id}", """{"enabled": false}""", ("Content-Type", "application/json"), ("St2-Api-Key", _key)), CancellationToken.None);
        var whileDisabled = await get();
        await Gateway.HandleAsync(Request("PUT", $"/api/v1/apikeys/{record.Id}", """{"enabled": true, "key_hash": "********"}""", ("Content-Type", "application/json"), ("St2-Api-Key", _key)), CancellationToken.None);
        var enabled = await get();
        var delete = await Gateway.HandleAsync(Request("DELETE", $"/api/v1/apikeys/{record.Id}", null, ("St2-Api-Key", _key)), CancellationToken.None);
        var deleted = await get();

        Assert.Equal(200, before.StatusCode);
        Assert.Equal(200, disable.StatusCode);
        Assert.False(disable.Body!["enabled"]!.GetValue<bool>());
        Assert.Equal(401, whileDisabled.StatusCode);
        Assert.Equal("Unauthorized - API key is disabled.", whileDisabled.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal(200, enabled.StatusCode);
        Assert.Equal(204, delete.StatusCode);
        Assert.Null(delete.Body);
        Assert.Equal(401, deleted.StatusCode);
    }

    [Fact]
    public async Task ApiKeys_AreShownOnceAtCreation_ThenOnlyMasked()
    {
        var created = await Gateway.HandleAsync(Request("POST", "/api/v1/apikeys", """{"user": "ci", "metadata": {"used_by": "pipeline"}}""", ("Content-Type", "application/json"), ("St2-Api-Key", _key)), CancellationToken.None);
        var key = created.Body!["key"]!.GetValue<string>();
        var id = created.Body["id"]!.GetValue<string>();
        var listed = await Gateway.HandleAsync(Request("GET", "/api/v1/apikeys", null, ("St2-Api-Key", _key)), CancellationToken.None);
        var got = await Gateway.HandleAsync(Request("GET", $"/api/v1/apikeys/{id}", null, ("St2-Api-Key", _key)), CancellationToken.None);
        var withHashes = await Gateway.HandleAsync(Request("GET", "/api/v1/apikeys?show_secrets=true", null, ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(201, created.StatusCode);
        Assert.Matches("^[A-Za-z0-9]{86}$", key);
        Assert.Equal("ci", created.Body["user"]!.GetValue<string>());
        Assert.Equal("pipeline", created.Body["metadata"]!["used_by"]!.GetValue<string>());
        Assert.Equal("st2admin", created.Body["metadata"]!["created_by"]!.GetValue<string>());
        Assert.DoesNotContain(key, listed.Body!.ToJsonString() + got.Body!.ToJsonString() + withHashes.Body!.ToJsonString());
        Assert.Equal("********", got.Body["key_hash"]!.GetValue<string>());
        Assert.Contains(withHashes.Body!.AsArray(), k => k!["key_hash"]!.GetValue<string>() == CredentialService.Hash(CredentialKind.ApiKey, key));
    }

    [Fact]
    public async Task AKeyLoadedByItsStackStormHash_OpensTheApiWithTheOriginalKey()
    {
        // The hash StackStorm stores for the key "st2-exported-key", as 'st2 apikey list --show-secrets' exports it,
        // computed with st2's own formula in Python: hashlib.sha512(b"saltnpepper" + key).hexdigest().
        const string st2Hash = "024168ee465c1964e528c4f796f68c59ba2babb4890a56bf0b2ccd1d8b528ac7f93e8eaff8d00de7b82222a10317b7972f5756254a06f96c463ebbd80a8299bc";

        var load = await Gateway.HandleAsync(Request("POST", "/api/v1/apikeys", $$"""{"user": "migrated", "key_hash": "{{st2Hash}}", "enabled": true}""", ("Content-Type", "application/json"), ("St2-Api-Key", _key)), CancellationToken.None);
        var use = await Gateway.HandleAsync(Request("GET", "/api/v1/executions", null, ("St2-Api-Key", "st2-exported-key")), CancellationToken.None);
        var bad = await Gateway.HandleAsync(Request("POST", "/api/v1/apikeys", """{"key_hash": "abc"}""", ("Content-Type", "application/json"), ("St2-Api-Key", _key)), CancellationToken.None);

        Assert.Equal(201, load.StatusCode);
        Assert.Null(load.Body!["key"]);
        Assert.Equal("migrated", load.Body["user"]!.GetValue<string>());
        Assert.Equal(200, use.StatusCode);
        Assert.Equal(400, bad.StatusCode);
        Assert.Contains("128 lower-case hex digits", bad.Body!["faultstring"]!.GetValue<string>());
    }
}

/// <summary>Who did what: every execution, trigger instance and rule enforcement records its user, as st2's context.user.</summary>
public sealed class AuditUserTests : IAsyncLifetime
{
    private readonly InMemoryAuditStore _audit = new();
    private readonly InMemoryMessageBus _bus = new(new BusOptions { RetryDelay = TimeSpan.FromMilliseconds(50) });
    private StormTestHost _host = null!;

    public async Task InitializeAsync() => _host = await StormTestHost.StartAsync(_audit, _bus, configure: services =>
        services.Configure<Security.Rbac.RbacOptions>(o => o.Enabled = false));

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private async Task<ApiResponse> AsAsync(string user, string method, string path, string? body = null)
    {
        var key = (await _host.Services.GetRequiredService<CredentialService>().CreateApiKeyAsync(user, null, CancellationToken.None)).Key;
        return await _host.Services.GetRequiredService<ApiGateway>().HandleAsync(new ApiRequest
        {
            Method = method,
            Path = path,
            Headers = [KeyValuePair.Create("St2-Api-Key", key), KeyValuePair.Create("Content-Type", "application/json")],
            Body = Encoding.UTF8.GetBytes(body ?? ""),
        }, CancellationToken.None);
    }

    [Fact]
    public async Task AnExecutionRunThroughTheApi_RecordsItsCaller_AndARerunRecordsTheRerunner()
    {
        var run = await AsAsync("alice", "POST", "/api/v1/executions", """{"action": "core.noop"}""");
        var id = run.Body!["id"]!.GetValue<string>();
        await _host.WaitForExecutionAsync(id);
        var reRun = await AsAsync("bob", "POST", $"/api/v1/executions/{id}/re_run", "{}");
        var shown = await AsAsync("carol", "GET", $"/api/v1/executions/{id}");

        Assert.Equal("alice", run.Body["context"]!["user"]!.GetValue<string>());
        Assert.Equal("alice", (await _audit.GetExecutionAsync(id, CancellationToken.None))!.User);
        Assert.Equal("bob", reRun.Body!["context"]!["user"]!.GetValue<string>());
        Assert.Equal("alice", shown.Body!["context"]!["user"]!.GetValue<string>());
    }

    [Fact]
    public async Task AWebhook_RecordsItsSender_AndTheRulesActionRunsAsTheSystemUser()
    {
        var sent = await AsAsync("github-bot", "POST", "/api/v1/webhooks/hello", """{"name": "who"}""");

        var trace = await Eventually.ReturnsAsync(() => _audit.GetTraceAsync(sent.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
            t => t.Executions.Count == 1 && t.RuleEnforcements.Count == 1);
        Assert.Equal("github-bot", trace.TriggerInstances[0].User);
        Assert.Equal("stanley", trace.RuleEnforcements[0].User);
        Assert.Equal("stanley", trace.Executions[0].User);
    }
}
