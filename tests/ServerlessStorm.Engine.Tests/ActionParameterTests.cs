using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>Action metadata as StackStorm defines it: runner parameters, templated defaults, dependency order.</summary>
public sealed class ActionParameterTests : IDisposable
{
    private readonly TempPacks _packs = new();
    private readonly RunnerRegistry _runners = RunnerRegistry.Default;

    private (PackCatalog Catalog, IReadOnlyList<PackProblem> Problems) Load(string actionYaml)
    {
        _packs.WithPack("t");
        _packs.Write("t/actions/a.yaml", actionYaml);
        var result = new PackLoader(_runners).LoadFrom(_packs.Root);
        return (result.Catalog, result.Problems);
    }

    private ActionDefinition Action(string yaml)
    {
        var (catalog, problems) = Load(yaml);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        return catalog.Actions["t.a"];
    }

    [Fact]
    public void Action_InheritsItsRunnersParameters_AndMayOverrideTheirDefaults()
    {
        var action = Action("name: a\nrunner_type: local-shell-cmd\nparameters:\n  timeout:\n    default: 5\n");

        Assert.Equal(["cmd", "cwd", "env", "sudo", "timeout"], action.Parameters.Keys.Order());
        Assert.True(action.Parameters["cmd"].Required);
        Assert.Equal(5, action.Parameters["timeout"].Default!.GetValue<long>());
        Assert.Equal("integer", action.Parameters["timeout"].Type);
    }

    [Fact]
    public void ParameterSchemaKeywords_AreChecked_WithEveryProblemNamed()
    {
        var action = Action("""
            name: a
            runner_type: noop
            parameters:
              count: {type: integer, minimum: 1, maximum: 3}
              code: {type: string, pattern: '^a+$', maxLength: 2}
              ports: {type: array, items: {type: integer}, minItems: 1}
              target: {type: object, properties: {host: {type: string, required: true}}, additionalProperties: false}
            """);

        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, new JsonObject
        {
            ["count"] = 99, ["code"] = "zzzzz", ["ports"] = new JsonArray("x", true), ["target"] = new JsonObject { ["port"] = 1 },
        }));

        Assert.Equal(
            [
                "'code': does not match the pattern ^a+$",
                "'code': is longer than 2 character(s)",
                "'count': 99 is more than the maximum 3",
                "'ports': [0]: expected integer, got string",
                "'ports': [1]: expected integer, got boolean",
                "'target': host: is required",
                "'target': port: is not an allowed property (allowed: host)",
            ],
            error.Problems.Order(StringComparer.Ordinal));
        var fine = ParameterResolver.Resolve(action, new JsonObject { ["count"] = 2, ["code"] = "aa", ["ports"] = new JsonArray(80), ["target"] = new JsonObject { ["host"] = "h" } });
        Assert.Equal("2", fine["count"]!.ToJsonString());
    }

    [Fact]
    public void ADatastoreSecretsReference_IsNotCheckedAgainstTheSchema_ItsValueIsUnknownUntilTheRunner()
    {
        var action = Action("name: a\nrunner_type: noop\nparameters:\n  token: {type: string, pattern: '^ghp_', maxLength: 40, enum: [x]}\n");
        var reference = "\u27e6st2kv:" + new string('a', 32) + ":system:token\u27e7";

        Assert.Equal(reference, ParameterResolver.Resolve(action, new JsonObject { ["token"] = reference })["token"]!.GetValue<string>());
    }

    [Fact]
    public void ASealedSecretFromAWorkflow_FeedsATypedParameter_ItsValueIsUnknownUntilTheRunner()
    {
        // An inquiry's secret integer answer, passed on by the workflow: still ciphertext when its task is resolved.
        var action = Action("name: a\nrunner_type: noop\nparameters:\n  pin: {type: integer, maximum: 9999}\n");
        var datastore = new ServerlessStorm.Engine.Datastore.KeyValueService(new ServerlessStorm.Engine.Datastore.InMemoryKeyValueStore(),
            Microsoft.Extensions.Options.Options.Create(new ServerlessStorm.Engine.Datastore.DatastoreOptions()), TimeProvider.System);
        var sealedPin = datastore.SealValue(JsonValue.Create(1234));

        Assert.Equal(sealedPin, ParameterResolver.Resolve(action, new JsonObject { ["pin"] = sealedPin })["pin"]!.GetValue<string>());
        Assert.True(datastore.TryUnsealValue(sealedPin, out var opened));
        Assert.Equal(1234, opened!.GetValue<int>());
    }

    [Fact]
    public void APatternThatBacktracksWithoutEnd_RefusesTheValue_AndDoesNotThrow()
    {
        var action = Action("name: a\nrunner_type: noop\nparameters:\n  s: {type: string, pattern: '^(a+)+$'}\n");

        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, new JsonObject { ["s"] = new string('a', 40) + "!" }));

        Assert.Contains("within 100 ms", Assert.Single(error.Problems));
    }

    [Fact]
    public void ABadSchemaKeyword_IsALoadProblem()
    {
        var (_, problems) = Load("name: a\nrunner_type: noop\nparameters:\n  code: {type: string, pattern: '(unclosed'}\n");

        var problem = Assert.Single(problems);
        Assert.Equal("parameters.code", problem.Field);
        Assert.Contains("pattern '(unclosed' is not a valid regular expression", problem.Message);
    }

    [Fact]
    public void ExplicitNull_IsNoValue_SoARequiredParameterIsMissing_AndADefaultApplies()
    {
        var action = Action("name: a\nrunner_type: noop\nparameters:\n  name: {type: string, required: true}\n  level: {type: string, default: low}\n");

        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, new JsonObject { ["name"] = null }));
        Assert.Equal(["'name' is required"], error.Problems);
        Assert.Equal("low", ParameterResolver.Resolve(action, new JsonObject { ["name"] = "n", ["level"] = null })["level"]!.GetValue<string>());
    }

    [Fact]
    public void ASecretsValue_IsNeverRepeatedInAProblem()
    {
        var action = Action("""
            name: a
            runner_type: noop
            parameters:
              pin: {type: integer, secret: true}
              color: {type: string, secret: true, enum: [red]}
              token: {type: string, secret: true, pattern: '^tok-'}
            """);

        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, new JsonObject
        {
            ["pin"] = "CANARY-1", ["color"] = "CANARY-2", ["token"] = "CANARY-3",
        }));

        Assert.Equal(3, error.Problems.Count);
        Assert.DoesNotContain("CANARY", error.Message);
        Assert.Contains("'pin' must be an integer, got a string", error.Problems);
        Assert.Contains("'color' must be one of [\"red\"], got another value", error.Problems);
        Assert.Contains("'token' does not meet its schema (pattern)", error.Problems);
    }

    [Fact]
    public void Action_CannotChangeARunnerParametersType()
    {
        var (_, problems) = Load("name: a\nrunner_type: local-shell-cmd\nparameters:\n  timeout:\n    type: string\n");

        Assert.Contains("cannot change its type", Assert.Single(problems).Message);
    }

    [Fact]
    public void Action_MayNarrowARunnerParameterThatTakesSeveralTypes_ToOneOfThem_ButNotWidenIt()
    {
        var (narrowed, narrowProblems) = Load("name: a\nrunner_type: http-request\nparameters:\n  body:\n    type: string\n");
        var (_, widenProblems) = Load("name: b\nrunner_type: http-request\nparameters:\n  headers:\n    type: string\n");

        Assert.Empty(narrowProblems);
        Assert.Equal("string", narrowed.Actions["t.a"].Parameters["body"].Type);
        Assert.Contains("cannot change its type", Assert.Single(widenProblems).Message);
    }

    [Fact]
    public void AStackStormShapedHttpAction_LoadsUnchanged()
    {
        // The shape of StackStorm's own core.http: empty entry_point, a string body, its own method list, and the
        // action-level auth and file_* parameters its runner reads.
        var (catalog, problems) = Load("""
            ---
            description: Sends a request over HTTP.
            enabled: true
            entry_point: ''
            name: web
            parameters:
              auth:
                description: An auth string such as 'x-auth-token=XYZ'.
                type: string
              body:
                description: What to send.
                type: string
              file_path:
                description: A file to upload.
                type: string
              headers:
                description: Headers to send.
                type: object
              method:
                description: The HTTP method.
                type: string
                enum: [HEAD, GET, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, PURGE]
              params:
                description: Query parameters.
                type: object
              timeout:
                default: 60
                description: Seconds to wait.
                type: number
            runner_type: "http-request"
            """);

        Assert.Empty(problems);
        var action = catalog.Actions["t.web"];
        Assert.Equal("string", action.Parameters["body"].Type);
        Assert.Contains("url_hosts_whitelist", action.Parameters.Keys);
        Assert.Contains("cookies", action.Parameters.Keys);
    }

    [Fact]
    public void HttpParametersStackStormLeavesToActions_MayBeDeclaredWithAnyType()
    {
        // The shape of StackStorm's examples.weather: params a string, timeout an integer, method immutable.
        var action = Action("""
            name: a
            runner_type: http-request
            entry_point: ''
            parameters:
              method: {default: GET, type: string, enum: [GET, POST], immutable: true}
              params: {type: string}
              timeout: {default: 60, type: integer}
              url: {default: "http://api.example.com/weather?q={{zip}}", immutable: true, type: string}
              zip: {type: string}
            """);

        Assert.Equal(("string", "integer"), (action.Parameters["params"].Type, action.Parameters["timeout"].Type));
    }

    [Fact]
    public void ImmutableParameter_CannotBeRedefinedOrSet()
    {
        var action = Action("name: a\nrunner_type: echo\nparameters:\n  message:\n    default: fixed\n    immutable: true\n");

        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, new JsonObject { ["message"] = "x" }));
        Assert.Contains("'message' is immutable", Assert.Single(error.Problems));
    }

    [Fact]
    public void TemplatedDefaults_AreRenderedInDependencyOrder()
    {
        var action = Action("""
            name: a
            runner_type: noop
            parameters:
              greeting: {type: string, default: "{{ salutation }}, {{ name }}"}
              salutation: {type: string, default: "Hello"}
              name: {type: string, required: true}
              count: {type: integer, default: "{{ name | length }}"}
              endpoint: {type: string, default: "https://{{ st2kv.system.api_host }}/v1"}
            """);

        var resolved = ParameterResolver.Resolve(action, new JsonObject { ["name"] = "storm" }, keyValues: new KeyValueSnapshot(new Dictionary<string, string> { ["system.api_host"] = "api.local" }));

        Assert.Equal("Hello, storm", resolved["greeting"]!.GetValue<string>());
        Assert.Equal(5, resolved["count"]!.GetValue<long>());
        Assert.Equal("https://api.local/v1", resolved["endpoint"]!.GetValue<string>());
    }

    [Fact]
    public void CyclicDefaults_AreAnErrorNamingTheCycle()
    {
        var action = Action("""
            name: a
            runner_type: noop
            parameters:
              a: {type: string, default: "{{ b }}"}
              b: {type: string, default: "{{ c }}"}
              c: {type: string, default: "{{ a }}"}
            """);

        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(action, []));

        Assert.Contains(error.Problems, p => p.Contains("cycle: a -> b -> c -> a", StringComparison.Ordinal));
    }

    [Fact]
    public void ValuesFromARule_AreNeverRenderedAgain()
    {
        var action = Action("name: a\nrunner_type: echo\n");

        var resolved = ParameterResolver.FromTemplates(action,
            new Dictionary<string, Expressions.TemplatedValue> { ["message"] = Expressions.TemplatedValue.Compile(JsonValue.Create("{{ trigger.body.m }}")) },
            Expressions.TemplateScope.ForTrigger(JsonNode.Parse("""{"body": {"m": "{{ 7*7 }}"}}""")), null);

        Assert.Equal("{{ 7*7 }}", resolved["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task ShellCommandDefault_ThatNamesAParameter_PassesItAsAVariable()
    {
        var marker = Path.Combine(Path.GetTempPath(), "storm-default-" + Guid.NewGuid().ToString("N"));
        var action = Action("""
            name: a
            runner_type: local-shell-cmd
            parameters:
              message: {type: string, required: true}
              cmd: {default: 'echo "{{ message }}"', immutable: true}
            """);

        var resolved = ParameterResolver.Resolve(action, new JsonObject { ["message"] = $"$(touch {marker})" }, shellCommandParameter: "cmd");
        var result = await new LocalShellCommandRunner().RunAsync(new RunnerContext("t", action, resolved, null), CancellationToken.None);

        Assert.Equal("echo \"${STORM_ARG_1}\"", resolved["cmd"]!.GetValue<string>());
        Assert.Equal($"$(touch {marker})", result.Result["stdout"]!.GetValue<string>());
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public async Task Sudo_IsRefused()
    {
        var action = Action("name: a\nrunner_type: local-shell-cmd\n");

        var result = await new LocalShellCommandRunner().RunAsync(
            new RunnerContext("t", action, ParameterResolver.Resolve(action, new JsonObject { ["cmd"] = "id", ["sudo"] = true }), null), CancellationToken.None);

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Contains("sudo is not supported", result.Error);
    }

    public void Dispose()
    {
        _packs.Dispose();
        foreach (var type in _runners.RunnerTypes)
        {
            if (_runners.TryGet(type, out var runner) && runner is IDisposable disposable)
            {
                disposable.Dispose();
            }
        }
    }
}
