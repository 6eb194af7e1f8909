using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Engine.Security.Rbac;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>A host with StackStorm RBAC files, and a caller per user.</summary>
internal sealed class RbacHost : IAsyncDisposable
{
    private readonly Dictionary<string, string> _keys = [];

    private RbacHost(StormTestHost host, string folder)
    {
        Host = host;
        Folder = folder;
    }

    public StormTestHost Host { get; }

    public string Folder { get; }

    public InMemoryAuditStore Audit => (InMemoryAuditStore)Host.Audit;

    public static async Task<RbacHost> StartAsync(IReadOnlyDictionary<string, string> files, string? packs = null)
    {
        var folder = Directory.CreateTempSubdirectory("storm-rbac-").FullName;
        foreach (var (path, text) in files)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(folder, path))!);
            await File.WriteAllTextAsync(Path.Combine(folder, path), text);
        }

        var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs, services =>
            services.Configure<RbacOptions>(o => o.Path = folder));
        return new RbacHost(host, folder);
    }

    public async Task<ApiResponse> AsAsync(string user, string method, string path, string? body = null)
    {
        if (!_keys.TryGetValue(user, out var key))
        {
            _keys[user] = key = (await Host.Services.GetRequiredService<CredentialService>().CreateApiKeyAsync(user, null, CancellationToken.None)).Key;
        }

        return await Host.Services.GetRequiredService<ApiGateway>().HandleAsync(new ApiRequest
        {
            Method = method,
            Path = path.Split('?')[0],
            Query = path.Contains('?')
                ? path.Split('?')[1].Split('&').Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => (string?)p[1])
                : new Dictionary<string, string?>(),
            Headers = [KeyValuePair.Create("St2-Api-Key", key), KeyValuePair.Create("Content-Type", "application/json")],
            Body = Encoding.UTF8.GetBytes(body ?? ""),
        }, CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        Directory.Delete(Folder, recursive: true);
    }
}

/// <summary>StackStorm's RBAC: its role and assignment files, system roles, grants and what they cover.</summary>
public sealed class RbacTests
{
    private static readonly Dictionary<string, string> SystemRoleUsers = new()
    {
        ["assignments/sa.yaml"] = "username: sa\nroles: [system_admin]\n",
        ["assignments/ad.yaml"] = "username: ad\nroles: [admin]\n",
        ["assignments/ob.yaml"] = "username: ob\nroles: [observer]\n",
    };

    public static TheoryData<string, string> EveryRoute()
    {
        var data = new TheoryData<string, string>();
        foreach (var route in ApiRoutes.For(null!).Where(r => r.Auth != RouteAuth.Password))
        {
            data.Add(route.Method, route.Template);
        }

        return data;
    }

    /// <summary>
    /// The RBAC matrix: each system role (and a user with none) against each route, on resources that exist. Admins
    /// may do everything; an observer may view and list; a user without roles may do nothing but reach the root.
    /// </summary>
    [Theory]
    [MemberData(nameof(EveryRoute))]
    public async Task EachSystemRole_OnEachRoute_IsAllowedOrRefusedWith403(string method, string template)
    {
        await using var rbac = await RbacHost.StartAsync(SystemRoleUsers);
        var inquiry = await rbac.AsAsync("sa", "POST", "/api/v1/executions", """{"action": "core.ask"}""");
        var inquiryId = inquiry.Body!["id"]!.GetValue<string>();
        await Eventually.ReturnsAsync(() => rbac.Audit.GetExecutionAsync(inquiryId, CancellationToken.None), e => e?.Status == ExecutionStatus.Pending);
        await rbac.AsAsync("sa", "PUT", "/api/v1/keys/some_key", """{"value": "v"}""");
        var (key, _) = await rbac.Host.Services.GetRequiredService<CredentialService>().CreateApiKeyAsync("someone", null, CancellationToken.None);
        var path = template.Replace("{**hook}", "hello", StringComparison.Ordinal).Replace("{name}", "some_key", StringComparison.Ordinal)
            .Replace("{traceTag}", inquiry.Body["trace_tag"]!.GetValue<string>(), StringComparison.Ordinal)
            .Replace("{id}", template.Contains("apikeys", StringComparison.Ordinal) ? key.Id : inquiryId, StringComparison.Ordinal);
        var body = template switch
        {
            "/api/v1/executions" => """{"action": "core.noop"}""",
            "/api/v1/webhooks/{**hook}" => """{"name": "rbac"}""",
            "/api/v1/keys/{name}" => """{"value": "w"}""",
            "/api/v1/inquiries/{id}" => """{"response": {"continue": true}}""",
            "/api/v1/apikeys/{id}" => """{"enabled": true}""",
            "/api/v1/executions/{id}" => """{"status": "pausing"}""",
            _ => method is "POST" or "PUT" ? "{}" : null,
        };
        var reads = method == "GET";
        var expected = new Dictionary<string, bool>
        {
            ["nobody"] = template == "/api/v1",
            ["ob"] = reads,
            ["ad"] = true,
            ["sa"] = true,
        };

        foreach (var (user, allowed) in expected)
        {
            var response = await rbac.AsAsync(user, method, path, body);
            if (allowed)
            {
                Assert.True(response.StatusCode != 403, $"{user}: {method} {path} was refused: {response.Body?.ToJsonString()}");
            }
            else
            {
                Assert.True(response.StatusCode == 403, $"{user}: {method} {path} answered {response.StatusCode}: {response.Body?.ToJsonString()}");
                Assert.StartsWith($"User \"{user}\" doesn't have required permission \"", response.Body!["faultstring"]!.GetValue<string>());
            }
        }
    }

    [Fact]
    public async Task AGrantOnAPack_CoversItsActionsAndTheirExecutions_AndNothingElse()
    {
        await using var rbac = await RbacHost.StartAsync(new Dictionary<string, string>
        {
            ["roles/examples_runner.yaml"] = """
                name: examples_runner
                description: Runs the examples pack's actions
                permission_grants:
                  - resource_uid: pack:examples
                    permission_types: [action_execute, action_view]
                  - permission_types: [execution_list]
                """,
            ["assignments/ops.yaml"] = "username: ops\nroles: [examples_runner]\n",
        }, RepositoryPaths.Packs);

        var own = await rbac.AsAsync("ops", "POST", "/api/v1/executions", """{"action": "examples.disk_usage", "parameters": {"path": "/tmp"}}""");
        var core = await rbac.AsAsync("ops", "POST", "/api/v1/executions", """{"action": "core.noop"}""");
        var list = await rbac.AsAsync("ops", "GET", "/api/v1/executions");
        var view = await rbac.AsAsync("ops", "GET", $"/api/v1/executions/{own.Body!["id"]}");
        var adminRun = await rbac.AsAsync("st2admin", "POST", "/api/v1/executions", """{"action": "core.noop"}""");
        var otherView = await rbac.AsAsync("ops", "GET", $"/api/v1/executions/{adminRun.Body!["id"]}");
        var keys = await rbac.AsAsync("ops", "GET", "/api/v1/keys");

        Assert.Equal(201, own.StatusCode);
        Assert.Equal(403, core.StatusCode);
        Assert.Equal("User \"ops\" doesn't have required permission \"action_execute\" on resource \"action:core:noop\"", core.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal(200, list.StatusCode);
        Assert.Equal(200, view.StatusCode);
        Assert.Equal(201, adminRun.StatusCode); // the administrator holds system_admin without an assignment
        Assert.Equal(403, otherView.StatusCode);
        Assert.Equal($"User \"ops\" doesn't have required permission \"execution_view\" on resource \"execution:{adminRun.Body["id"]}\"", otherView.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal(403, keys.StatusCode);
        Assert.Contains(rbac.Host.Logs, l => l.Contains("Denied: user ops lacks action_execute on action:core:noop", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ApiKeyCreate_MakesKeysForTheCallerOnly_NeverAnotherUsersOrAChosenOne()
    {
        await using var rbac = await RbacHost.StartAsync(new Dictionary<string, string>
        {
            ["roles/keys.yaml"] = "name: keys\npermission_grants:\n  - permission_types: [api_key_create]\n",
            ["assignments/bob.yaml"] = "username: bob\nroles: [keys]\n",
        });
        const string chosenHash = "024168ee465c1964e528c4f796f68c59ba2babb4890a56bf0b2ccd1d8b528ac7f93e8eaff8d00de7b82222a10317b7972f5756254a06f96c463ebbd80a8299bc";

        var forAdmin = await rbac.AsAsync("bob", "POST", "/api/v1/apikeys", """{"user": "st2admin"}""");
        var chosen = await rbac.AsAsync("bob", "POST", "/api/v1/apikeys", $$"""{"key_hash": "{{chosenHash}}"}""");
        var own = await rbac.AsAsync("bob", "POST", "/api/v1/apikeys", """{"metadata": {"created_by": "st2admin"}}""");
        var adminForBob = await rbac.AsAsync("st2admin", "POST", "/api/v1/apikeys", """{"user": "bob"}""");
        var colon = await rbac.AsAsync("st2admin", "POST", "/api/v1/apikeys", """{"user": "bob:evil"}""");

        Assert.Equal(403, forAdmin.StatusCode);
        Assert.Equal("only administrators may create API keys for other users", forAdmin.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal(403, chosen.StatusCode);
        Assert.Equal(201, own.StatusCode);
        Assert.Equal("bob", own.Body!["user"]!.GetValue<string>());
        Assert.Equal("bob", own.Body["metadata"]!["created_by"]!.GetValue<string>());
        Assert.Equal(201, adminForBob.StatusCode);
        Assert.Equal(400, colon.StatusCode);
    }

    [Fact]
    public async Task ReRunningAnotherUsersExecution_NeedsAnAdministrator_ItWouldReuseTheirSecrets()
    {
        await using var rbac = await RbacHost.StartAsync(new Dictionary<string, string>
        {
            ["roles/runner.yaml"] = "name: runner\npermission_grants:\n  - resource_uid: action:core:noop\n    permission_types: [action_execute]\n",
            ["assignments/bob.yaml"] = "username: bob\nroles: [runner]\n",
        });
        var admins = await rbac.AsAsync("st2admin", "POST", "/api/v1/executions", """{"action": "core.noop"}""");
        var bobs = await rbac.AsAsync("bob", "POST", "/api/v1/executions", """{"action": "core.noop"}""");
        await rbac.Host.WaitForExecutionAsync(admins.Body!["id"]!.GetValue<string>());
        await rbac.Host.WaitForExecutionAsync(bobs.Body!["id"]!.GetValue<string>());

        var otherUsers = await rbac.AsAsync("bob", "POST", $"/api/v1/executions/{admins.Body["id"]}/re_run", "{}");
        var own = await rbac.AsAsync("bob", "POST", $"/api/v1/executions/{bobs.Body["id"]}/re_run", "{}");
        var byAdmin = await rbac.AsAsync("st2admin", "POST", $"/api/v1/executions/{bobs.Body["id"]}/re_run", "{}");

        Assert.Equal(403, otherUsers.StatusCode);
        Assert.Contains("re-running another user's execution (with its secrets) needs administrator access", otherUsers.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal(201, own.StatusCode);
        Assert.Equal(201, byAdmin.StatusCode);
    }

    [Fact]
    public async Task AnInquiryLimitedToRoles_AcceptsExactlyTheUsersHoldingOne()
    {
        await using var rbac = await RbacHost.StartAsync(new Dictionary<string, string>
        {
            ["roles/approver.yaml"] = "name: approver\npermission_grants:\n  - resource_uid: 'inquiry:'\n    permission_types: [inquiry_respond]\n",
            ["roles/responder.yaml"] = "name: responder\npermission_grants:\n  - permission_types: [inquiry_respond]\n",
            ["assignments/alice.yaml"] = "username: alice\nroles: [approver]\n",
            ["assignments/bob.yaml"] = "username: bob\nroles: [responder]\n",
        });
        var asked = await rbac.AsAsync("st2admin", "POST", "/api/v1/executions", """{"action": "core.ask", "parameters": {"roles": ["approver"]}}""");
        var id = asked.Body!["id"]!.GetValue<string>();
        await Eventually.ReturnsAsync(() => rbac.Audit.GetExecutionAsync(id, CancellationToken.None), e => e?.Status == ExecutionStatus.Pending);

        var bob = await rbac.AsAsync("bob", "PUT", $"/api/v1/inquiries/{id}", """{"response": {"continue": true}}""");
        var carol = await rbac.AsAsync("carol", "PUT", $"/api/v1/inquiries/{id}", """{"response": {"continue": true}}""");
        var alice = await rbac.AsAsync("alice", "PUT", $"/api/v1/inquiries/{id}", """{"response": {"continue": true}}""");

        Assert.Equal(403, bob.StatusCode);
        Assert.Contains("User \"bob\" does not have permission to respond to inquiry", bob.Body!["faultstring"]!.GetValue<string>());
        Assert.Contains("allows roles: approver", bob.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal(403, carol.StatusCode); // no inquiry_respond at all
        Assert.Equal(200, alice.StatusCode);
        Assert.Equal("alice", (await rbac.Audit.GetExecutionAsync(id, CancellationToken.None))!.Result!["responded_by"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheUserScope_IsEachUsersOwn_AndOthersAreForAdministratorsOnly()
    {
        await using var rbac = await RbacHost.StartAsync(new Dictionary<string, string>
        {
            ["assignments/alice.yaml"] = "username: alice\nroles: [observer]\n",
            ["assignments/bob.yaml"] = "username: bob\nroles: [observer]\n",
        });

        var aliceSets = await rbac.AsAsync("alice", "PUT", "/api/v1/keys/token", """{"value": "alice-value", "scope": "user"}""");
        var bobSets = await rbac.AsAsync("bob", "PUT", "/api/v1/keys/token", """{"value": "bob-value", "scope": "user"}""");
        var aliceReads = await rbac.AsAsync("alice", "GET", "/api/v1/keys/token?scope=user");
        var aliceLists = await rbac.AsAsync("alice", "GET", "/api/v1/keys?scope=user");
        await rbac.AsAsync("st2admin", "PUT", "/api/v1/keys/shared_url", """{"value": "https://example.net"}""");
        var aliceListsAll = await rbac.AsAsync("alice", "GET", "/api/v1/keys?scope=all"); // st2 key list's default
        var aliceReadsBobs = await rbac.AsAsync("alice", "GET", "/api/v1/keys/token?scope=user&user=bob");
        var adminReadsBobs = await rbac.AsAsync("st2admin", "GET", "/api/v1/keys/token?scope=user&user=bob");
        var aliceDecryptsSystem = await rbac.AsAsync("alice", "GET", "/api/v1/keys?decrypt=true");
        var aliceSetsSystem = await rbac.AsAsync("alice", "PUT", "/api/v1/keys/shared", """{"value": "x"}""");

        Assert.Equal(200, aliceSets.StatusCode);
        Assert.Equal(200, bobSets.StatusCode);
        Assert.Equal("alice-value", aliceReads.Body!["value"]!.GetValue<string>());
        Assert.Equal("token", aliceReads.Body["name"]!.GetValue<string>());
        Assert.Equal("alice", aliceReads.Body["user"]!.GetValue<string>());
        Assert.Equal(["alice-value"], aliceLists.Body!.AsArray().Select(k => k!["value"]!.GetValue<string>()));
        Assert.Equal(["https://example.net", "alice-value"], aliceListsAll.Body!.AsArray().Select(k => k!["value"]!.GetValue<string>()));
        Assert.Equal(403, aliceReadsBobs.StatusCode);
        Assert.Equal("\"user\" attribute can only be provided by admins", aliceReadsBobs.Body!["faultstring"]!.GetValue<string>());
        Assert.Equal("bob-value", adminReadsBobs.Body!["value"]!.GetValue<string>());
        Assert.Equal(403, aliceDecryptsSystem.StatusCode);
        Assert.Equal(403, aliceSetsSystem.StatusCode);
    }

    [Fact]
    public async Task StKvUserInATemplate_IsTheUserWhoRunsTheAction()
    {
        using var packs = new TempPacks().WithPack("kv");
        packs.Write("kv/actions/whoami.yaml", """
            name: whoami
            runner_type: local-shell-cmd
            parameters:
              cmd: {type: string, default: "echo {{ st2kv.user.greeting }}"}
            """);
        await using var rbac = await RbacHost.StartAsync(new Dictionary<string, string> { ["assignments/alice.yaml"] = "username: alice\nroles: [admin]\n" }, packs.Root);
        await rbac.AsAsync("alice", "PUT", "/api/v1/keys/greeting", """{"value": "hello-alice", "scope": "user"}""");
        await rbac.AsAsync("st2admin", "PUT", "/api/v1/keys/greeting", """{"value": "hello-admin", "scope": "user"}""");

        var run = await rbac.AsAsync("alice", "POST", "/api/v1/executions", """{"action": "kv.whoami"}""");
        var done = await rbac.Host.WaitForExecutionAsync(run.Body!["id"]!.GetValue<string>());

        Assert.Equal("hello-alice", done.Result!["stdout"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("roles/r.yaml", "name: r\npermission_grants:\n  - permission_types: [action_execute]\n", "r.yaml:3:", "'action_execute' needs a resource_uid")]
    [InlineData("roles/r.yaml", "name: r\npermission_grants:\n  - resource_uid: pack:examples\n    permission_types: [action_fly]\n", "r.yaml:4:", "unknown permission type 'action_fly'")]
    [InlineData("roles/r.yaml", "name: r\npermission_grants:\n  - resource_uid: webhook:x\n    permission_types: [action_execute]\n", "r.yaml:4:", "'action_execute' applies to action resources, not to 'webhook:x'")]
    [InlineData("roles/r.yaml", "name: admin\n", "r.yaml:1:", "role 'admin' is a system role")]
    [InlineData("roles/r.yaml", "name: r\ncolour: blue\n", "r.yaml:2:", "unknown field 'colour'")]
    [InlineData("assignments/a.yaml", "username: a\nroles: [nonesuch]\n", "a.yaml:2:", "roles: 'nonesuch' is not a role")]
    [InlineData("assignments/a.yaml", "username: a\nroles: [\n", "a.yaml:", "YAML error")]
    public void ABadRbacFile_IsRefused_NamingTheFileLineAndProblem(string file, string text, string where, string problem)
    {
        var folder = Directory.CreateTempSubdirectory("storm-rbac-").FullName;
        Directory.CreateDirectory(Path.Combine(folder, Path.GetDirectoryName(file)!));
        File.WriteAllText(Path.Combine(folder, file), text);

        var error = Assert.Throws<RbacLoadException>(() => RbacDefinitions.Load(folder));

        Directory.Delete(folder, recursive: true);
        var shown = Assert.Single(error.Problems).ToString();
        Assert.Contains(where, shown);
        Assert.Contains(problem, shown);
    }

    [Fact]
    public void TheRepositorysExampleRole_Loads() =>
        Assert.Contains("operator", RbacDefinitions.Load(Path.Combine(RepositoryPaths.Root, "rbac")).Roles.Keys);

    [Fact]
    public void DisabledRolesAndAssignments_AreLeftOut_AsStackStormSkipsThem()
    {
        var folder = Directory.CreateTempSubdirectory("storm-rbac-").FullName;
        Directory.CreateDirectory(Path.Combine(folder, "roles"));
        Directory.CreateDirectory(Path.Combine(folder, "assignments"));
        File.WriteAllText(Path.Combine(folder, "roles", "off.yaml"), "name: off\nenabled: false\npermission_grants: []\n");
        File.WriteAllText(Path.Combine(folder, "assignments", "x.yaml"), "username: x\nroles: [observer]\nenabled: false\n");

        var definitions = RbacDefinitions.Load(folder);

        Directory.Delete(folder, recursive: true);
        Assert.Empty(definitions.Roles);
        Assert.Empty(definitions.Assignments);
    }
}
