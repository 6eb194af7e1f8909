using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>
/// Authentication as a user meets it with a real <c>storm serve</c>: the administrator key filed on first start and
/// found by the CLI, keys and tokens from the CLI, and the browser and loopback rules on real HTTP.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class AuthTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("storm-auth-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    // RBAC files of the test's own: ci and alice are observers (they may view and list, not run).
    private Dictionary<string, string> Environment(string? credentials = null)
    {
        var rbac = Path.Combine(_dir, "rbac");
        Directory.CreateDirectory(Path.Combine(rbac, "assignments"));
        File.WriteAllText(Path.Combine(rbac, "assignments", "ci.yaml"), "username: ci\nroles: [observer]\n");
        File.WriteAllText(Path.Combine(rbac, "assignments", "alice.yaml"), "username: alice\nroles: [observer]\n");
        return new()
        {
            ["Storage__Prefix"] = azurite.NewStorageOptions().Prefix,
            ["Storm__Rbac__Path"] = rbac,
            [Cli.Client.CredentialsFile.PathVariable] = credentials ?? Path.Combine(_dir, "home", ".storm", "credentials.json"),
        };
    }

    private string[] Serve(params string[] more) => ["--storage", azurite.ConnectionString, "--audit-journal", Path.Combine(_dir, "journal"), .. more];

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task FirstStart_FilesAnAdminKeyOnlyTheUserCanRead_TheCliUsesIt_AndARestartKeepsIt()
    {
        var environment = Environment();
        var file = environment[Cli.Client.CredentialsFile.PathVariable];

        var port = AzuriteFixture.FreePort().ToString(CultureInfo.InvariantCulture);
        string key;
        await using (var first = await StormProcess.ServeAsync(environment, Serve("--port", port)))
        {
            await Eventually.TrueAsync(() => first.Output.Contains($"the administrator's key is new, in {file}", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the start line");
            key = Cli.Client.CredentialsFile.Read(new Uri(first.Url), file)!;
            var listed = await StormProcess.RunAsync(environment, "execution", "list", "--api", first.Url);
            var anonymous = await StormProcess.RunAsync(new Dictionary<string, string>(environment) { [Cli.Client.CredentialsFile.PathVariable] = Path.Combine(_dir, "nobody.json") },
                "execution", "list", "--api", first.Url);

            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(file)!));
            Assert.Matches("^[A-Za-z0-9]{86}$", key);
            Assert.DoesNotContain(key, first.Output);
            Assert.True(listed.ExitCode == 0, listed.ToString());
            Assert.NotEqual(0, anonymous.ExitCode);
            Assert.Contains("Unauthorized - One of Token or API key required.", anonymous.StdErr);
            Assert.Contains("STORM_API_KEY", anonymous.StdErr);
        }

        await using var second = await StormProcess.ServeAsync(environment, Serve("--port", port));
        await Eventually.TrueAsync(() => second.Output.Contains($"the administrator's key is in {file}", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the start line");
        Assert.Equal(key, Cli.Client.CredentialsFile.Read(new Uri(second.Url), file));
    }

    [Fact]
    public async Task ApiKeyVerbs_CreateAKeyThatWorksFromTheEnvironment_UntilDisabled()
    {
        var environment = Environment();
        await using var storm = await StormProcess.ServeAsync(environment, Serve());

        var created = await StormProcess.RunAsync(environment, "apikey", "create", "--user", "ci", "--metadata", """{"used_by": "pipeline"}""", "--api", storm.Url);
        var body = JsonNode.Parse(created.StdOut)!;
        var key = body["key"]!.GetValue<string>();
        var id = body["id"]!.GetValue<string>();
        var asCi = new Dictionary<string, string>(environment) { ["ST2_API_KEY"] = key, [Cli.Client.CredentialsFile.PathVariable] = Path.Combine(_dir, "none.json") };
        var withKey = await StormProcess.RunAsync(asCi, "execution", "list", "--api", storm.Url);
        var notAllowed = await StormProcess.RunAsync(asCi, "run", "core.noop", "--api", storm.Url);
        var listed = await StormProcess.RunAsync(environment, "apikey", "list", "--json", "--api", storm.Url);
        var disabled = await StormProcess.RunAsync(environment, "apikey", "disable", id, "--api", storm.Url);
        var refused = await StormProcess.RunAsync(asCi, "execution", "list", "--api", storm.Url);
        var deleted = await StormProcess.RunAsync(environment, "apikey", "delete", id, "--api", storm.Url);

        Assert.True(created.ExitCode == 0, created.ToString());
        Assert.Equal("ci", body["user"]!.GetValue<string>());
        Assert.True(withKey.ExitCode == 0, withKey.ToString());
        Assert.NotEqual(0, notAllowed.ExitCode);
        Assert.Contains("User \"ci\" doesn't have required permission \"action_execute\" on resource \"action:core:noop\"", notAllowed.StdErr);
        Assert.Contains(JsonNode.Parse(listed.StdOut)!.AsArray(), k => k!["id"]!.GetValue<string>() == id && k["key_hash"]!.GetValue<string>() == "********");
        Assert.DoesNotContain(key, listed.StdOut);
        Assert.True(disabled.ExitCode == 0, disabled.ToString());
        Assert.Contains("Unauthorized - API key is disabled.", refused.StdErr);
        Assert.Contains("$ST2_API_KEY", refused.StdErr);
        Assert.True(deleted.ExitCode == 0, deleted.ToString());
    }

    [Fact]
    public async Task AnHtpasswdUser_GetsATokenWithStormAuth_AndTheCliUsesIt()
    {
        var htpasswd = Path.Combine(_dir, "htpasswd");
        await File.WriteAllTextAsync(htpasswd, $"alice:{BCrypt.Net.BCrypt.HashPassword("wonderland", 4)}\n");
        var environment = Environment();
        environment["Storm__Auth__HtpasswdFile"] = htpasswd;
        await using var storm = await StormProcess.ServeAsync(environment, Serve());

        var token = await StormProcess.RunAsync(environment, "auth", "alice", "--password", "wonderland", "--only-token", "--api", storm.Url);
        var wrong = await StormProcess.RunAsync(environment, "auth", "alice", "--password", "guess", "--api", storm.Url);
        var asAlice = new Dictionary<string, string>(environment) { ["STORM_AUTH_TOKEN"] = token.StdOut.Trim(), [Cli.Client.CredentialsFile.PathVariable] = Path.Combine(_dir, "none.json") };
        var listed = await StormProcess.RunAsync(asAlice, "execution", "list", "--api", storm.Url);

        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Matches("^[0-9a-f]{32}$", token.StdOut.Trim());
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains("Invalid or missing credentials", wrong.StdErr);
        Assert.True(listed.ExitCode == 0, listed.ToString());
    }

    [Fact]
    public async Task OverRealHttp_ACrossSitePostAndARebindingHost_RunNothing()
    {
        var marker = Path.Combine(_dir, "ran");
        var environment = Environment();
        await using var storm = await StormProcess.ServeAsync(environment, Serve());
        using var http = StormProcess.NewHttpClient();
        var run = new JsonObject { ["action"] = "core.local", ["parameters"] = new JsonObject { ["cmd"] = $"touch {marker}" } }.ToJsonString();

        using var crossSite = new HttpRequestMessage(HttpMethod.Post, storm.Url + "/api/v1/executions") { Content = new StringContent(run, Encoding.UTF8, "text/plain") };
        crossSite.Headers.Add("Origin", "https://evil.example");
        using var rebound = new HttpRequestMessage(HttpMethod.Post, storm.Url + "/api/v1/executions") { Content = new StringContent(run, Encoding.UTF8, "application/json") };
        rebound.Headers.Host = "rebound.evil.example:" + new Uri(storm.Url).Port;
        using var plainCrossSite = await new HttpClient().SendAsync(crossSite);
        using var withKeyRebound = await http.SendAsync(rebound);
        using var preflight = await new HttpClient().SendAsync(new HttpRequestMessage(HttpMethod.Options, storm.Url + "/api/v1/executions") { Headers = { { "Origin", "https://evil.example" } } });

        Assert.Equal(HttpStatusCode.Forbidden, plainCrossSite.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, withKeyRebound.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, preflight.StatusCode);
        Assert.False(preflight.Headers.Contains("Access-Control-Allow-Origin"));
        // An accepted request records its execution before it is answered: none recorded, none will run.
        using var list = new HttpRequestMessage(HttpMethod.Get, storm.Url + "/api/v1/executions");
        list.Headers.Add("St2-Api-Key", Cli.Client.CredentialsFile.Read(new Uri(storm.Url), environment[Cli.Client.CredentialsFile.PathVariable]));
        using var listed = await http.SendAsync(list);
        Assert.Empty(JsonNode.Parse(await listed.EnsureSuccessStatusCode().Content.ReadAsStringAsync())!.AsArray());
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task NoAuth_IsRefusedOffLoopback_AndOnLoopbackNeedsNoKey()
    {
        var environment = Environment(Path.Combine(_dir, "unused.json"));
        var refused = await StormProcess.RunAsync(environment, ["serve", "--port", AzuriteFixture.FreePort().ToString(CultureInfo.InvariantCulture), "--host", "0.0.0.0", "--no-auth", .. Serve()]);
        await using var open = await StormProcess.ServeAsync(environment, Serve("--no-auth"));
        using var anonymous = new HttpClient();
        using var listed = await anonymous.GetAsync(open.Url + "/api/v1/executions");
        // Nothing made while authentication is off could outlive it.
        using var key = await anonymous.PostAsync(open.Url + "/api/v1/apikeys", new StringContent("{}", Encoding.UTF8, "application/json"));
        using var token = await anonymous.PostAsync(open.Url + "/auth/v1/tokens", new StringContent("{}", Encoding.UTF8, "application/json"));

        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("authentication can be switched off only on a loopback address", refused.StdErr);
        Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, key.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, token.StatusCode);
        await Eventually.TrueAsync(() => open.Output.Contains("auth: OFF (--no-auth)", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the start line");
        Assert.False(File.Exists(Path.Combine(_dir, "unused.json")));
    }
}
