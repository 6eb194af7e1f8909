using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Workflows;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>Parameters rendered as StackStorm's param.py renders them, wherever an execution starts.</summary>
public class ParameterRenderingTests
{
    private static readonly string Key = Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    private static ParameterDefinition P(string name, string type, JsonNode? @default = null, bool immutable = false) =>
        new(name, type, false, @default, false, immutable, null, null, null);

    private static ActionDefinition Action(params ParameterDefinition[] parameters) =>
        new("t", "a", "noop", null, "", true, parameters.ToDictionary(p => p.Name), "a.yaml");

    [Fact]
    public void TemplatesInsideObjectsAndArrays_AreRendered_AndOnlyABareNameKeepsItsType()
    {
        var action = Action(
            P("kv", "string", "value"),
            P("count", "integer", 3),
            P("tags", "array", new JsonArray("a", "b")),
            P("env", "object", JsonNode.Parse("""{"KV": "{{ kv }}", "HOST": "{{ st2kv.system.host }}", "PLAIN": "x"}""")),
            P("body", "object", JsonNode.Parse("""{"n": "{{count}}", "text": "{{ count }}", "tags": "{{tags}}", "nested": [{"k": "{{ kv | upper }}"}], "{{ kv }}_key": 1}""")),
            P("list", "array", JsonNode.Parse("""["{{ kv }}-1", "{{ count + 1 }}", 7]""")));

        var resolved = ParameterResolver.Resolve(action, [], keyValues: new KeyValueSnapshot(new Dictionary<string, string> { ["system.host"] = "api.local" }));

        Assert.Equal("""{"KV":"value","HOST":"api.local","PLAIN":"x"}""", resolved["env"]!.ToJsonString());
        Assert.Equal("""{"n":3,"text":"3","tags":["a","b"],"nested":[{"k":"VALUE"}],"value_key":1}""", resolved["body"]!.ToJsonString());
        Assert.Equal("""["value-1","4",7]""", resolved["list"]!.ToJsonString());
    }

    [Fact]
    public void TemplatesInsideObjects_DependOnTheParametersTheyName_AndTheirKeysAreFetchedFirst()
    {
        var action = Action(P("env", "object", JsonNode.Parse("""{"A": "{{ zzz }}", "B": "{{ st2kv.user.b }}"}""")), P("zzz", "string", "{{ 'z' * 3 }}"));

        Assert.Contains(("user", "b"), ParameterResolver.DatastoreKeys(action, new JsonObject()));
        var resolved = ParameterResolver.Resolve(action, [], keyValues: new KeyValueSnapshot(new Dictionary<string, string> { ["user.b"] = "bee" }));
        Assert.Equal("""{"A":"zzz","B":"bee"}""", resolved["env"]!.ToJsonString());
    }

    [Fact]
    public void ABadTemplateInsideAnObject_IsReportedWithItsPlace()
    {
        var action = Action(P("env", "object", JsonNode.Parse("""{"ok": "{{ 1 }}", "bad": {"deep": "{{ 1 + }}"}, "missing": "{{ nope }}"}""")));

        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, []));
        Assert.Contains(error.Problems, p => p.Contains("'env' is not a valid template at env.bad.deep", StringComparison.Ordinal));

        action = Action(P("env", "object", JsonNode.Parse("""{"missing": "{{ nope }}"}""")));
        error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, []));
        Assert.Contains(error.Problems, p => p.Contains("'env' could not be rendered: at env.missing: 'nope' is undefined", StringComparison.Ordinal));
    }

    [Fact]
    public void SuppliedObjects_AreRendered_OnlyWhenSuppliedValuesAre()
    {
        var action = Action(P("x", "string", "ex"), P("body", "object"));
        var body = JsonNode.Parse("""{"k": "{{ x }}"}""");

        Assert.Equal("""{"k":"ex"}""", ParameterResolver.Resolve(action, new JsonObject { ["body"] = body!.DeepClone() })["body"]!.ToJsonString());
        Assert.Equal("""{"k":"{{ x }}"}""", ParameterResolver.Resolve(action, new JsonObject { ["body"] = body.DeepClone() }, renderSupplied: false)["body"]!.ToJsonString());
    }

    [Fact]
    public void ARulesObjectValues_RenderTheirTemplatesToText_AsStackStormsRuleEnforcement()
    {
        var action = Action(P("body", "object"), P("count", "integer"));
        var rule = new RuleDefinition("p", "r", "", true, false, "core.st2.webhook", [], [], "t.a",
            new Dictionary<string, Expressions.TemplatedValue>
            {
                ["body"] = Expressions.TemplatedValue.Compile(JsonNode.Parse("""{"n": "{{ trigger.body.n }}", "tags": ["{{ trigger.body.n + 1 }}", 3]}""")),
                ["count"] = Expressions.TemplatedValue.Compile(JsonValue.Create("{{ trigger.body.n }}")),
            }, "r.yaml");

        var resolved = ParameterResolver.ForRule(action, rule, JsonNode.Parse("""{"body": {"n": 5}}"""), null, null);

        Assert.Equal("""{"n":"5","tags":["6",3]}""", resolved["body"]!.ToJsonString());
        Assert.Equal(5, resolved["count"]!.GetValue<long>());
    }

    private static async Task<(StormTestHost Host, KeyValueService Datastore)> StartAsync(TempPacks packs)
    {
        var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs.Root, services =>
            services.Configure<DatastoreOptions>(o => o.EncryptionKey = Key));
        return (host, host.Services.GetRequiredService<KeyValueService>());
    }

    [Fact]
    public async Task ASecretFromTheDatastore_ThatIsNotItsParametersType_FailsTheExecution_WithoutShowingIt()
    {
        using var packs = new TempPacks().WithPack("kv");
        packs.Write("kv/actions/port.yaml", """
            name: port
            runner_type: local-shell-cmd
            parameters:
              port: {type: integer, default: "{{ st2kv.system.port }}"}
              cmd: {default: 'echo "port={{ port }}"', immutable: true}
            """);
        var (host, datastore) = await StartAsync(packs);
        await using var _ = host;
        var executions = host.Services.GetRequiredService<ExecutionService>();

        await datastore.SetAsync("system", "port", "8080", secret: true, ttl: null, CancellationToken.None);
        var good = await host.WaitForExecutionAsync((await executions.RunAsync("kv.port", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        Assert.True(good.Status == ExecutionStatus.Succeeded, good.Error);
        Assert.Equal("port=********", good.Result!["stdout"]!.GetValue<string>());

        await datastore.SetAsync("system", "port", "not-a-port-canary", secret: true, ttl: null, CancellationToken.None);
        var bad = await host.WaitForExecutionAsync((await executions.RunAsync("kv.port", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        Assert.Equal(ExecutionStatus.Failed, bad.Status);
        Assert.Contains("'port' must be an integer, got a string (a secret, not shown)", bad.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("canary", bad.Error + bad.Result?.ToJsonString() + string.Join("\n", host.Logs), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Defaults_ReadThePacksConfigAndTheActionContext_AsStackStormsConfigContextAndActionContext()
    {
        using var packs = new TempPacks().WithPack("cfg");
        packs.Write("cfg/config.yaml", "region: eu-west\napi: {host: api.local}\n");
        packs.Write("cfg/actions/where.yaml", """
            name: where
            runner_type: local-shell-cmd
            parameters:
              region: {type: string, default: "{{ config_context.region }}"}
              target: {type: object, default: {host: "{{ config_context.api.host }}", by: "{{ action_context.user }}"}}
              cmd: {default: 'echo "{{ region }} {{ target.host }} {{ target.by }} {{ action_context.pack }}"', immutable: true}
            """);
        var (host, _) = await StartAsync(packs);
        await using var _ = host;

        var run = await host.Services.GetRequiredService<ExecutionService>().RunAsync("cfg.where", [], null, TestCallers.Admin.User, CancellationToken.None);
        var finished = await host.WaitForExecutionAsync(run.Id);

        Assert.True(finished.Status == ExecutionStatus.Succeeded, finished.Error);
        Assert.Equal($"eu-west api.local {TestCallers.Admin.User} cfg", finished.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("eu-west", finished.Parameters["region"]!.GetValue<string>());
    }

    [Fact]
    public async Task AWorkflowTask_RendersItsActionsDatastoreDefaults()
    {
        using var packs = new TempPacks().WithPack("kv");
        packs.Write("kv/actions/show.yaml", """
            name: show
            runner_type: local-shell-cmd
            parameters:
              host: {type: string, default: "{{ st2kv.system.host }}"}
              token: {type: string, default: "{{ st2kv.system.token | decrypt_kv }}"}
              greeting: {type: string}
              cmd: {default: 'echo "{{ greeting }} {{ host }} {{ token }}"', immutable: true}
            """);
        var (host, datastore) = await StartAsync(packs);
        await using var _ = host;
        await datastore.SetAsync("system", "host", "api.local", secret: false, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "token", "t0ken-canary", secret: true, ttl: null, CancellationToken.None);
        var tasks = host.Services.GetRequiredService<WorkflowTaskRunner>();

        var workflowId = StormIds.New(DateTimeOffset.UtcNow);
        var outcome = await tasks.RunAsync(workflowId, workflowId, "a1", "show", "kv.show", new JsonObject { ["greeting"] = "hi" }, CancellationToken.None);

        Assert.True(outcome.Status == ExecutionStatus.Succeeded, outcome.Error);
        Assert.Equal("hi api.local ********", outcome.Result!["stdout"]!.GetValue<string>());
        var task = await host.Audit.GetExecutionAsync(outcome.ExecutionId!, CancellationToken.None);
        Assert.Equal("\u27e6st2kv.system.token\u27e7", task!.Parameters["token"]!.GetValue<string>());
    }

    [Fact]
    public async Task AReRunsOverrides_AreRenderedLikeAnyRunsParameters_AndTheOriginalsValuesAreNot()
    {
        using var packs = new TempPacks().WithPack("kv");
        packs.Write("kv/actions/say.yaml", """
            name: say
            runner_type: local-shell-cmd
            parameters:
              message: {type: string}
              count: {type: integer, default: 1}
              cmd: {default: 'echo "{{ message }} x{{ count }}"', immutable: true}
            """);
        var (host, datastore) = await StartAsync(packs);
        await using var _ = host;
        await datastore.SetAsync("system", "who", "world", secret: false, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "times", "3", secret: false, ttl: null, CancellationToken.None);
        var executions = host.Services.GetRequiredService<ExecutionService>();
        var first = await host.WaitForExecutionAsync((await executions.RunAsync("kv.say", new JsonObject { ["message"] = "{{ '{{' }} literal }}" }, null, TestCallers.Admin.User, CancellationToken.None)).Id);
        Assert.Equal("{{ literal }} x1", first.Result!["stdout"]!.GetValue<string>());

        var again = await host.WaitForExecutionAsync((await executions.ReRunAsync(first.Id, new JsonObject { ["count"] = "{{ st2kv.system.times }}" }, TestCallers.Admin.User, CancellationToken.None)).Id);
        Assert.True(again.Status == ExecutionStatus.Succeeded, again.Error);
        Assert.Equal("{{ literal }} x3", again.Result!["stdout"]!.GetValue<string>());

        var hello = await host.WaitForExecutionAsync((await executions.ReRunAsync(first.Id, new JsonObject { ["message"] = "hello {{ st2kv.system.who }}" }, TestCallers.Admin.User, CancellationToken.None)).Id);
        Assert.Equal("hello world x1", hello.Result!["stdout"]!.GetValue<string>());
        Assert.Equal(3, again.Parameters["count"]!.GetValue<long>());
    }
}
