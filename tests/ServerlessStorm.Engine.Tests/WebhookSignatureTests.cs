using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// Signed webhooks, checked against each scheme's published example and against a flood of tampered and replayed
/// deliveries, through the same gateway every host serves.
/// </summary>
public sealed class WebhookSignatureTests : IAsyncLifetime
{
    // GitHub's documented example (docs: validating webhook deliveries).
    private const string GitHubSecret = "It's a Secret to Everybody";
    private const string GitHubBody = "Hello, World!";
    private const string GitHubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    // Standard Webhooks' reference libraries' test vector.
    private const string StandardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string StandardId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long StandardTimestamp = 1614265330;
    private const string StandardBody = """{"test": 2432232314}""";
    private const string StandardSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // Slack's documented example (verifying requests from Slack).
    private const string SlackSecret = "8f742231b10e8888abcd99yyyzzz85a5";
    private const long SlackTimestamp = 1531420618;
    private const string SlackBody = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    private const string SlackSignature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    private readonly TempPacks _packs = new TempPacks().WithPack("hooks");
    private readonly InMemoryAuditStore _audit = new();
    private readonly ManualTimeProvider _time = new(DateTimeOffset.FromUnixTimeSeconds(StandardTimestamp));
    private StormTestHost _host = null!;

    public async Task InitializeAsync()
    {
        _packs.Write("hooks/webhooks/github.yaml", "url: github\nverify: {scheme: github, secret: github_secret}\n");
        _packs.Write("hooks/webhooks/standard.yaml", "url: standard\nverify:\n  scheme: standard-webhooks\n  secret: [standard_old, standard_secret]\n");
        _packs.Write("hooks/webhooks/slack.yaml", "url: slack\nuser: slack-bot\nverify: {scheme: slack, secret: slack_secret, tolerance: 300}\n");
        _packs.Write("hooks/webhooks/both.yaml", "url: both\nrequire_api_key: true\nverify: {scheme: github, secret: github_secret}\n");
        foreach (var hook in new[] { "github", "standard", "slack", "both" })
        {
            _packs.Write($"hooks/rules/{hook}.yaml", $"name: {hook}\ntrigger: {{type: core.st2.webhook, parameters: {{url: {hook}}}}}\naction: {{ref: core.noop}}\n");
        }

        _host = await StormTestHost.StartAsync(_audit, new InMemoryMessageBus(), _packs.Root, services =>
        {
            services.AddSingleton<TimeProvider>(_time);
            services.Configure<Security.Rbac.RbacOptions>(o => o.Enabled = false);
        });
        var datastore = _host.Services.GetRequiredService<KeyValueService>();
        await datastore.SetAsync("system", "github_secret", GitHubSecret, secret: true, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "standard_secret", StandardSecret, secret: true, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "standard_old", "whsec_" + Convert.ToBase64String(Encoding.UTF8.GetBytes("the old secret, still accepted")), secret: true, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "slack_secret", SlackSecret, secret: true, ttl: null, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _packs.Dispose();
    }

    private Task<ApiResponse> PostAsync(string hook, string body, params (string Name, string Value)[] headers) =>
        _host.Services.GetRequiredService<ApiGateway>().HandleAsync(new ApiRequest
        {
            Method = "POST",
            Path = $"/api/v1/webhooks/{hook}",
            Headers = [.. headers.Select(h => KeyValuePair.Create(h.Name, h.Value))],
            Body = Encoding.UTF8.GetBytes(body),
        }, CancellationToken.None);

    private static (string, string)[] Standard(string id, long timestamp, string signature) =>
        [("webhook-id", id), ("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("webhook-signature", signature), ("Content-Type", "application/json")];

    private static (string, string)[] Slack(long timestamp, string signature) =>
        [("X-Slack-Request-Timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("X-Slack-Signature", signature), ("Content-Type", "application/x-www-form-urlencoded")];

    private async Task<TriggerInstanceRecord> InstanceAsync(ApiResponse accepted) =>
        (await Eventually.ReturnsAsync(() => _audit.GetTraceAsync(accepted.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None), t => t.TriggerInstances.Count > 0)).TriggerInstances[0];

    [Fact]
    public async Task GitHubsPublishedExample_Verifies_WithoutAnApiKey()
    {
        // GitHub's example body is not JSON: verified, then refused as a body (400), which proves the signature passed.
        var response = await PostAsync("github", GitHubBody, ("X-Hub-Signature-256", GitHubSignature));
        var json = await PostAsync("github", """{"zen": "Keep it logically awesome."}""",
            ("X-Hub-Signature-256", "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(GitHubSecret), Encoding.UTF8.GetBytes("""{"zen": "Keep it logically awesome."}""")))),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"));

        Assert.Equal(400, response.StatusCode);
        Assert.Contains("not valid JSON", response.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal(202, json.StatusCode);
        Assert.StartsWith("github-", json.Body!["trigger_instance_id"]!.GetValue<string>());
        Assert.Equal("webhook:github", (await InstanceAsync(json)).User);
    }

    [Fact]
    public async Task AGitHubDeliveryReplayed_WithOtherDeliveryHeaders_IsTheSameTriggerInstance()
    {
        // GitHub signs only the body: headers such as X-GitHub-Delivery are the replayer's to change.
        const string body = """{"action": "opened"}""";
        var signature = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(GitHubSecret), Encoding.UTF8.GetBytes(body)));

        var first = await PostAsync("github", body, ("X-Hub-Signature-256", signature), ("X-GitHub-Delivery", "d-1"));
        var replays = new[]
        {
            await PostAsync("github", body, ("X-Hub-Signature-256", signature), ("X-GitHub-Delivery", "d-2")),
            await PostAsync("github", body, ("X-Hub-Signature-256", signature), ("X-Delivery-Id", "replayed")),
            await PostAsync("github", body, ("X-Hub-Signature-256", signature), ("Idempotency-Key", "again")),
        };

        var id = first.Body!["trigger_instance_id"]!.GetValue<string>();
        Assert.All(replays, r => Assert.Equal(id, r.Body!["trigger_instance_id"]!.GetValue<string>()));
        var trace = await Eventually.ReturnsAsync(() => _audit.GetTraceAsync(first.Body["trace_tag"]!.GetValue<string>(), CancellationToken.None), t => t.Executions.Count == 1);
        Assert.Single(trace.TriggerInstances);
    }

    [Fact]
    public async Task StandardWebhooksTestVector_Verifies_WhereverItsSignatureStandsInTheHeader()
    {
        var alone = await PostAsync("standard", StandardBody, Standard(StandardId, StandardTimestamp, StandardSignature));
        // Rotation: several signatures in one header, the good one first, last, or made with the older key.
        var last = await PostAsync("standard", StandardBody, Standard(StandardId, StandardTimestamp, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + StandardSignature));
        var first = await PostAsync("standard", StandardBody, Standard(StandardId, StandardTimestamp, StandardSignature + " v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="));
        var oldKey = Convert.ToBase64String(HMACSHA256.HashData(Encoding.UTF8.GetBytes("the old secret, still accepted"), Encoding.UTF8.GetBytes($"{StandardId}.{StandardTimestamp}.{StandardBody}")));
        var rotated = await PostAsync("standard", StandardBody, Standard(StandardId, StandardTimestamp, "v1a,AAAA v1," + oldKey));

        Assert.All([alone, last, first, rotated], r => Assert.Equal(202, r.StatusCode));
        // The signed webhook-id is the delivery id: the same message sent again is the same trigger instance.
        Assert.All([alone, last, first, rotated], r => Assert.Equal(StandardId, r.Body!["trigger_instance_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task SlacksPublishedExample_Verifies_AndItsFormBodyReadsAsStackStormReadsIt()
    {
        _time.Advance(TimeSpan.FromSeconds(SlackTimestamp - StandardTimestamp));

        var response = await PostAsync("slack", SlackBody, Slack(SlackTimestamp, SlackSignature));
        var replay = await PostAsync("slack", SlackBody, Slack(SlackTimestamp, SlackSignature));

        Assert.Equal(202, response.StatusCode);
        var instance = await InstanceAsync(response);
        Assert.Equal("slack-bot", instance.User);
        Assert.Equal("""["/webhook-collect"]""", instance.Payload!["body"]!["command"]!.ToJsonString());
        Assert.Null(instance.Payload["body"]!["text"]); // parse_qs leaves out empty values
        Assert.Equal(response.Body!["trigger_instance_id"]!.GetValue<string>(), replay.Body!["trigger_instance_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task AHookThatAlsoNeedsAKey_RefusesASignatureAlone_AndTakesBoth()
    {
        var key = (await _host.Services.GetRequiredService<CredentialService>().CreateApiKeyAsync("ci", null, CancellationToken.None)).Key;
        var body = """{"ref": "main"}""";
        var signature = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(GitHubSecret), Encoding.UTF8.GetBytes(body)));

        var signedOnly = await PostAsync("both", body, ("X-Hub-Signature-256", signature));
        var keyOnly = await PostAsync("both", body, ("St2-Api-Key", key));
        var both = await PostAsync("both", body, ("X-Hub-Signature-256", signature), ("St2-Api-Key", key));

        Assert.Equal(401, signedOnly.StatusCode);
        Assert.Equal(401, keyOnly.StatusCode);
        Assert.Equal(202, both.StatusCode);
        Assert.Equal("ci", (await InstanceAsync(both)).User);
    }

    /// <summary>
    /// 10,000 deliveries, each tampered or replayed one way: flipped body bytes, a wrong key, an old timestamp, a
    /// missing header, a truncated signature — across the three schemes. Every one is refused with 401 and recorded
    /// as rejected; none reaches the bus, and no record holds a secret.
    /// </summary>
    [Fact]
    public async Task TenThousandTamperedOrReplayedDeliveries_AreAllRefused_AndNoneReachesTheBus()
    {
        var random = new Random(20261202);
        var githubBody = """{"action": "opened", "number": 7}""";
        var githubSignature = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(GitHubSecret), Encoding.UTF8.GetBytes(githubBody)));
        string Flip(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(7));
            return Encoding.UTF8.GetString(bytes);
        }

        string WrongKeyHex(string content) => Convert.ToHexStringLower(HMACSHA256.HashData(RandomNumberGenerator.GetBytes(32), Encoding.UTF8.GetBytes(content)));
        var cases = new Func<Task<ApiResponse>>[]
        {
            () => PostAsync("github", Flip(githubBody), ("X-Hub-Signature-256", githubSignature)),
            () => PostAsync("github", githubBody, ("X-Hub-Signature-256", "sha256=" + WrongKeyHex(githubBody))),
            () => PostAsync("github", githubBody),
            () => PostAsync("github", githubBody, ("X-Hub-Signature-256", githubSignature[..random.Next(7, githubSignature.Length)])),
            () => PostAsync("standard", Flip(StandardBody), Standard(StandardId, StandardTimestamp, StandardSignature)),
            () => PostAsync("standard", StandardBody, Standard(StandardId, StandardTimestamp, "v1," + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)))),
            () => PostAsync("standard", StandardBody, Standard(StandardId, StandardTimestamp - 301 - random.Next(100_000), StandardSignature)),
            () => PostAsync("standard", StandardBody, [.. Standard(StandardId, StandardTimestamp, StandardSignature).Where(h => h.Item1 != "webhook-id")]),
            () => PostAsync("standard", StandardBody, Standard(StandardId, StandardTimestamp, StandardSignature[..random.Next(3, StandardSignature.Length - 1)])),
            () => PostAsync("standard", StandardBody, Standard("msg_other", StandardTimestamp, StandardSignature)),
            () => PostAsync("slack", Flip(SlackBody), Slack(SlackTimestamp, SlackSignature)),
            () => PostAsync("slack", SlackBody, Slack(SlackTimestamp, "v0=" + WrongKeyHex($"v0:{SlackTimestamp}:{SlackBody}"))),
            () => PostAsync("slack", SlackBody, Slack(SlackTimestamp, SlackSignature)), // a replay: the clock is years past it
            () => PostAsync("slack", SlackBody, [.. Slack(SlackTimestamp, SlackSignature).Where(h => h.Item1 != "X-Slack-Signature")]),
            () => PostAsync("slack", SlackBody, Slack(SlackTimestamp, SlackSignature[..random.Next(3, SlackSignature.Length - 1)])),
        };

        var statuses = new Dictionary<int, int>();
        for (var i = 0; i < 10_000; i++)
        {
            var response = await cases[i % cases.Length]();
            statuses[response.StatusCode] = statuses.GetValueOrDefault(response.StatusCode) + 1;
        }

        Assert.Equal(new Dictionary<int, int> { [401] = 10_000 }, statuses);
        var instances = await _audit.QueryTriggerInstancesAsync(new AuditQuery(null, DateTimeOffset.UnixEpoch, null, 1000), CancellationToken.None);
        Assert.All(instances, t => Assert.Equal(TriggerInstanceStatus.Rejected, t.Status));
        Assert.Contains("signature was refused", instances[0].Reason);
        // Recorded, but not without bound (anybody can send these): at most 60 a minute per hook, the body as its hash.
        Assert.Equal(3 * WebhookSensor.RecordedRefusalsPerMinute, instances.Count);
        Assert.All(instances, t => Assert.Null(t.Payload!["body_text"]));
        Assert.Contains(_host.Logs, l => l.Contains("more than 60 refused deliveries this minute", StringComparison.Ordinal));
        Assert.Empty(await _audit.QueryExecutionsAsync(new AuditQuery(null, DateTimeOffset.UnixEpoch, null, 10), CancellationToken.None));
        var stored = string.Join("\n", instances.Select(t => t.Payload?.ToJsonString() + t.Reason));
        Assert.DoesNotContain(GitHubSecret, stored);
        Assert.DoesNotContain("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", stored);
        Assert.DoesNotContain(SlackSecret, stored);
    }

    [Theory]
    [InlineData("url: x\nverify: {scheme: gitlab, secret: s}\n", "verify.scheme", "unknown scheme 'gitlab'")]
    [InlineData("url: x\nverify: {scheme: github}\n", "verify.secret", "is required")]
    [InlineData("url: x\nverify: {scheme: github, secret: '{{ st2kv.system.s }}'}\n", "verify.secret", "is not a datastore key name")]
    [InlineData("url: x\nverify: {scheme: slack, secret: s, tolerance: 0}\n", "verify.tolerance", "whole seconds")]
    [InlineData("url: x\nrequire_api_key: false\n", "require_api_key", "always needs an API key")]
    [InlineData("verify: {scheme: github, secret: s}\n", "url", "is required")]
    public void ABadWebhookDeclaration_IsAPackProblem_NamingTheField(string yaml, string field, string message)
    {
        using var packs = new TempPacks().WithPack("hooks");
        packs.Write("hooks/webhooks/x.yaml", yaml);

        var result = new PackLoader(new Actions.RunnerRegistry(Actions.RunnerRegistry.BuiltIn(new Actions.Runners.EgressGuard([])))).LoadFrom(packs.Root);

        var problem = Assert.Single(result.Problems);
        Assert.Equal(field, problem.Field);
        Assert.Contains(message, problem.Message);
        Assert.EndsWith("x.yaml", problem.File);
    }
}
