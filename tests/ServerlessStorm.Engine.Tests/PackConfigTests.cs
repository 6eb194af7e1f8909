using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>Packs' configs as StackStorm has them: configs/&lt;pack&gt;.yaml, config.schema.yaml, templated values, secrets.</summary>
public sealed class PackConfigTests
{
    private const string Key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    private const string Schema = """
        api_key:
          type: string
          secret: true
          required: true
        region:
          type: string
          enum: [eu-west, us-east]
          default: eu-west
        retries:
          type: integer
          default: 3
        server:
          type: object
          additionalProperties: false
          properties:
            host: {type: string, required: true}
            port: {type: integer, default: 443}
        tags:
          type: array
          items: {type: string}
        """;

    private static PackLoadResult Load(TempPacks packs) =>
        new PackLoader(RunnerRegistry.Default) { Configs = new FolderPackConfigSource(Path.Combine(packs.Root, "configs")).ReadAll() }.LoadLeavingOutBroken(packs.Root);

    [Fact]
    public void ConfigFromTheConfigsFolder_IsCheckedAgainstTheSchema_AndEachProblemNamesFileLineAndKey()
    {
        using var packs = new TempPacks().WithPack("svc").WithPack("other");
        packs.Write("svc/config.schema.yaml", Schema);
        packs.Write("configs/svc.yaml", """
            region: mars
            retries: many
            server:
              port: "x"
              hots: api.local
            tags: [a, 7]
            """);

        var result = Load(packs);

        var svc = Assert.Single(result.Packs, p => p.Name == "svc");
        Assert.False(svc.Loaded);
        Assert.True(Assert.Single(result.Packs, p => p.Name == "other").Loaded);
        var problems = svc.Problems.Select(p => p.ToString().Replace(packs.Root + "/", "", StringComparison.Ordinal)).ToList();
        Assert.Contains("configs/svc.yaml:1:1: api_key: is required and has no value (and the schema gives no default)", problems);
        Assert.Contains("configs/svc.yaml:1:9: region: 'mars' is not one of [\"eu-west\",\"us-east\"]", problems);
        Assert.Contains("configs/svc.yaml:2:10: retries: expected integer, got a string ('many')", problems);
        Assert.Contains("configs/svc.yaml:4:3: server.host: is required and has no value (and the schema gives no default)", problems);
        Assert.Contains("configs/svc.yaml:4:9: server.port: expected integer, got a string ('x')", problems);
        Assert.Contains(problems, p => p.StartsWith("configs/svc.yaml:5:3: server.hots: is not allowed here", StringComparison.Ordinal));
        Assert.Contains("configs/svc.yaml:6:11: tags[1]: expected string, got a number ('7')", problems);
        Assert.Equal(7, problems.Count);
    }

    [Fact]
    public void ConfigsFolder_IsBesideThePacksFolder_UnlessConfigured()
    {
        Assert.Equal(Path.GetFullPath("/srv/storm/configs"), FolderPackConfigSource.Resolve(null, "/srv/storm/packs/"));
        Assert.Equal("/etc/storm-configs", FolderPackConfigSource.Resolve("/etc/storm-configs", "/srv/storm/packs"));
    }

    [Fact]
    public void ValidConfig_GetsTheSchemasDefaults_NestedToo_AndKeysTheSchemaDoesNotNameAreKept()
    {
        using var packs = new TempPacks().WithPack("svc");
        packs.Write("svc/config.schema.yaml", Schema);
        packs.Write("configs/svc.yaml", "api_key: k-123\nserver: {host: api.local}\nextra: kept\n");

        var result = Load(packs);

        Assert.Empty(result.Problems);
        var config = result.Catalog.Packs["svc"].Config;
        Assert.Equal("""{"api_key":"k-123","server":{"host":"api.local","port":443},"extra":"kept","region":"eu-west","retries":3}""", config.ToJsonString());
    }

    [Fact]
    public void ConfigsFolder_WinsOverThePacksOwnConfigYaml_WhichIsIgnoredWithAWarning_AndIsAFallbackOtherwise()
    {
        using var packs = new TempPacks().WithPack("both").WithPack("old");
        packs.Write("both/config.yaml", "who: in-pack\n");
        packs.Write("configs/both.yaml", "who: configs\n");
        packs.Write("old/config.yaml", "who: in-pack\n");

        var result = Load(packs);

        Assert.Empty(result.Problems);
        Assert.Equal("configs", result.Catalog.Packs["both"].Config["who"]!.GetValue<string>());
        Assert.Equal("in-pack", result.Catalog.Packs["old"].Config["who"]!.GetValue<string>());
        Assert.Contains(result.Warnings, w => w.File.EndsWith("both/config.yaml", StringComparison.Ordinal) && w.Message.Contains("ignored", StringComparison.Ordinal));
        Assert.Contains(result.Warnings, w => w.File.EndsWith("old/config.yaml", StringComparison.Ordinal) && w.Message.Contains("move it to configs/old.yaml", StringComparison.Ordinal));
    }

    [Fact]
    public void RequiredKeyWithoutAnyConfig_LoadsThePackWithAWarning_AsStackStormRegistersIt()
    {
        using var packs = new TempPacks().WithPack("svc");
        packs.Write("svc/config.schema.yaml", Schema);

        var result = Load(packs);

        Assert.Empty(result.Problems);
        Assert.Contains(result.Warnings, w => w.Message.Contains("api_key", StringComparison.Ordinal) && w.Message.Contains("configs/svc.yaml", StringComparison.Ordinal));
        Assert.Equal("eu-west", result.Catalog.Packs["svc"].Config["region"]!.GetValue<string>());
    }

    [Fact]
    public void ValuesUnderASecretObjectOrArray_AreNotShownInProblems_WhateverTheirOwnSchema()
    {
        using var packs = new TempPacks().WithPack("svc");
        packs.Write("svc/config.schema.yaml", """
            creds:
              type: object
              secret: true
              properties:
                user: {type: string}
                password: {type: integer, enum: [1, 2]}
                pin: {type: string, maxLength: 2}
                hint: {type: string}
            keys:
              type: array
              secret: true
              items: {type: integer}
            """);
        packs.Write("configs/svc.yaml", """
            creds:
              user: admin
              password: hunter2-pass
              pin: pin-canary-9
              hint: "{{ hint-canary"
            keys: [key-canary-1]
            """);

        var problems = Load(packs).Problems.Select(p => p.ToString()).ToList();

        Assert.Contains(problems, p => p.EndsWith("creds.password: expected integer, got a string", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.EndsWith("creds.pin: does not meet the schema's maxLength", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("creds.hint: template error at character", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.EndsWith("keys[0]: expected integer, got a string", StringComparison.Ordinal));
        Assert.All(problems, p => Assert.DoesNotContain("canary", p, StringComparison.Ordinal));
        Assert.All(problems, p => Assert.DoesNotContain("hunter2", p, StringComparison.Ordinal));
    }

    [Fact]
    public void DecryptKvOnASecretKey_AndABrokenTemplate_AreProblemsAtTheirLines()
    {
        using var packs = new TempPacks().WithPack("svc");
        packs.Write("svc/config.schema.yaml", Schema);
        packs.Write("configs/svc.yaml", "api_key: \"{{ st2kv.system.k | decrypt_kv }}\"\nregion: \"{{ oops\"\nserver: {host: h}\n");

        var problems = Load(packs).Problems.Select(p => p.ToString()).ToList();

        Assert.Contains(problems, p => p.Contains("configs/svc.yaml:1:10: api_key: is 'secret: true'", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("configs/svc.yaml:2:9: region: template error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TemplatedValues_AreRenderedFromTheDatastoreForEachExecution_AndSecretsAreMaskedInTheOutput()
    {
        using var packs = new TempPacks().WithPack("svc");
        packs.Write("svc/config.schema.yaml", """
            api_key: {type: string, secret: true}
            token: {type: string}
            endpoint: {type: string}
            """);
        packs.Write("configs/svc.yaml", """
            api_key: key-literal-canary
            token: "{{ st2kv.system.token | decrypt_kv }}"
            endpoint: "https://{{ st2kv.system.host }}/v1"
            """);
        packs.Write("svc/actions/show.yaml", """
            name: show
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'echo "{{ config_context.endpoint }} {{ config_context.api_key }} {{ config_context.token }}"', immutable: true}
            """);
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs.Root, services =>
        {
            services.Configure<DatastoreOptions>(o => o.EncryptionKey = Key);
            services.Configure<StormOptions>(o => o.ConfigsPath = Path.Combine(packs.Root, "configs"));
        });
        var datastore = host.Services.GetRequiredService<KeyValueService>();
        await datastore.SetAsync("system", "token", "tok-secret-canary", secret: true, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "host", "one.local", secret: false, ttl: null, CancellationToken.None);

        var first = await RunAsync(host, "svc.show");
        await datastore.SetAsync("system", "host", "two.local", secret: false, ttl: null, CancellationToken.None);
        var second = await RunAsync(host, "svc.show");

        Assert.Equal(ExecutionStatus.Succeeded, first.Status);
        Assert.Equal("https://one.local/v1 ******** ********", first.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("https://two.local/v1 ******** ********", second.Result!["stdout"]!.GetValue<string>());
        var everything = first.Parameters.ToJsonString() + second.Parameters.ToJsonString() + string.Join("\n", host.Logs);
        Assert.DoesNotContain("key-literal-canary", everything, StringComparison.Ordinal);
        Assert.DoesNotContain("tok-secret-canary", everything, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunnersGetTheConfigRenderedAndOpened_InRunnerContextConfig_WhilePackConfigKeepsTheTemplates()
    {
        using var packs = new TempPacks().WithPack("svc");
        packs.Write("svc/config.schema.yaml", "password: {type: string, secret: true}\nuser: {type: string, default: admin}\n");
        packs.Write("configs/svc.yaml", "password: \"{{ st2kv.system.pw }}\"\n");
        packs.Write("svc/actions/capture.yaml", "name: capture\nrunner_type: config-capture\n");
        var runner = new CapturingRunner();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs.Root, services =>
        {
            services.Configure<DatastoreOptions>(o => o.EncryptionKey = Key);
            services.Configure<StormOptions>(o => o.ConfigsPath = Path.Combine(packs.Root, "configs"));
            services.AddSingleton<IActionRunner>(runner);
        });
        await host.Services.GetRequiredService<KeyValueService>().SetAsync("system", "pw", "pw-canary", secret: true, ttl: null, CancellationToken.None);

        var done = await RunAsync(host, "svc.capture");

        Assert.Equal(ExecutionStatus.Succeeded, done.Status);
        Assert.Equal("""{"password":"pw-canary","user":"admin"}""", runner.Seen!.Config.ToJsonString());
        Assert.Equal("{{ st2kv.system.pw }}", runner.Seen.Pack!.Config["password"]!.GetValue<string>());
        Assert.Equal("""{"printed":"********"}""", done.Result!.ToJsonString());
    }

    [Fact]
    public async Task AConfigTemplateThatFailsToRender_FailsTheRequestNamingTheKey()
    {
        using var packs = new TempPacks().WithPack("svc");
        packs.Write("configs/svc.yaml", "token: \"{{ st2kv.system.missing | decrypt_kv }}\"\n");
        packs.Write("svc/actions/noop.yaml", "name: noop\nrunner_type: noop\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs.Root, services =>
        {
            services.Configure<DatastoreOptions>(o => o.EncryptionKey = Key);
            services.Configure<StormOptions>(o => o.ConfigsPath = Path.Combine(packs.Root, "configs"));
        });

        var error = await Assert.ThrowsAsync<ParameterValidationException>(() =>
            host.Services.GetRequiredService<ExecutionService>().RunAsync("svc.noop", [], null, TestCallers.Admin.User, CancellationToken.None));

        Assert.Contains("pack 'svc' config key 'token'", error.Message, StringComparison.Ordinal);
    }

    private static async Task<ExecutionRecord> RunAsync(StormTestHost host, string action) =>
        await host.WaitForExecutionAsync((await host.Services.GetRequiredService<ExecutionService>().RunAsync(action, [], null, TestCallers.Admin.User, CancellationToken.None)).Id);

    private sealed class CapturingRunner : IActionRunner
    {
        public RunnerContext? Seen { get; private set; }

        public string RunnerType => "config-capture";

        public Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
        {
            Seen = context;
            // What the action prints of its config is masked like any secret.
            return Task.FromResult(RunnerResult.Succeeded(new JsonObject { ["printed"] = context.Config["password"]!.GetValue<string>() }));
        }
    }
}
