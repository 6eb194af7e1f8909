using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

public class PackLoaderTests
{
    private static readonly RunnerRegistry Runners = RunnerRegistry.Default;

    private static PackLoadResult Load(string root) => new PackLoader(Runners).LoadFrom(root);

    [Fact]
    public void RepositoryPacks_LoadWithoutProblems()
    {
        var result = Load(RepositoryPaths.Packs);

        Assert.Empty(result.Problems);
        Assert.Contains("core.local", result.Catalog.Actions.Keys);
        Assert.Contains("core.http", result.Catalog.Actions.Keys);
        Assert.Contains("core.st2.CronTimer", result.Catalog.TriggerTypes.Keys);
        Assert.True(result.Catalog.HasWebhook("hello"));
    }

    [Fact]
    public void SinglePackFolder_LoadsWithTheSiblingCorePack()
    {
        var result = Load(Path.Combine(RepositoryPaths.Packs, "examples"));

        Assert.Empty(result.Problems);
        Assert.Contains("examples.hello", result.Catalog.Rules.Select(r => r.Ref));
    }

    [Theory]
    [InlineData("ref: ../victim\nname: victim\n", "ref", "'../victim' is not a pack ref")]
    [InlineData("name: My Pack\n", "name", "pack name 'My Pack' has characters other than")]
    public void PackRef_OutsideStackStormsCharacters_IsAProblem_SoItNamesNoFolderOutsideThePacks(string packYaml, string field, string message)
    {
        using var packs = new TempPacks();
        packs.Write("odd/pack.yaml", packYaml);

        var problem = Assert.Single(Load(packs.Root).Problems);

        Assert.Equal(field, problem.Field);
        Assert.Contains(message, problem.Message, StringComparison.Ordinal);
        Assert.EndsWith("pack.yaml", problem.File, StringComparison.Ordinal);
    }

    [Fact]
    public void PackRef_GivenBesideAFreeFormName_NamesThePack()
    {
        using var packs = new TempPacks();
        packs.Write("aws/pack.yaml", "ref: aws\nname: Amazon Web Services\nversion: 1.0.0\n");

        Assert.Contains("aws", Load(packs.Root).Catalog.Packs.Keys);
    }

    [Fact]
    public void BrokenPack_ReportsEveryProblemWithFileLineAndField()
    {
        using var packs = new TempPacks().WithPack("broken");
        packs.Write("broken/actions/bad_yaml.yaml", "name: bad\nrunner_type: noop\nparameters:\n  x: [unclosed\n");
        packs.Write("broken/actions/bad_runner.yaml", "name: bad_runner\nrunner_type: local-shel-cmd\n");
        packs.Write("broken/rules/missing_action.yaml", """
            name: missing_action
            pack: broken
            trigger:
              type: core.st2.webhook
              parameters:
                url: x
            action:
              ref: broken.nope
            """);
        packs.Write("broken/rules/no_url.yaml", """
            name: no_url
            pack: broken
            trigger:
              type: core.st2.webhook
            criteria:
              trigger.body.x:
                type: looksLike
                pattern: 1
            action:
              ref: core.noop
            """);

        var problems = Load(packs.Root).Problems;

        var yaml = Assert.Single(problems, p => p.File.EndsWith("bad_yaml.yaml", StringComparison.Ordinal));
        Assert.Contains("YAML error", yaml.Message);
        Assert.True(yaml.Position.Line >= 4);

        var runner = Assert.Single(problems, p => p.File.EndsWith("bad_runner.yaml", StringComparison.Ordinal));
        Assert.Equal("runner_type", runner.Field);
        Assert.Equal(2, runner.Position.Line);
        Assert.Contains("unknown runner 'local-shel-cmd'", runner.Message);

        var missing = Assert.Single(problems, p => p.File.EndsWith("missing_action.yaml", StringComparison.Ordinal));
        Assert.Equal("action.ref", missing.Field);
        Assert.Equal(8, missing.Position.Line);
        Assert.Contains("'broken.nope' does not exist", missing.Message);

        var noUrl = problems.Where(p => p.File.EndsWith("no_url.yaml", StringComparison.Ordinal)).ToList();
        Assert.Contains(noUrl, p => p.Field == "trigger.parameters.url");
        var op = Assert.Single(noUrl, p => p.Field == "criteria.trigger.body.x.type");
        Assert.Equal(7, op.Position.Line);
        Assert.Contains("unknown operator 'looksLike'", op.Message);
        Assert.Contains("equals", op.Message);
        Assert.Contains("regex", op.Message);
    }

    [Fact]
    public void RuleParameters_UnknownOrImmutable_AreReported()
    {
        using var packs = new TempPacks().WithPack("p");
        packs.Write("p/actions/fixed.yaml", """
            name: fixed
            runner_type: echo
            parameters:
              message:
                type: string
                default: hi
                immutable: true
            """);
        packs.Write("p/rules/r.yaml", """
            name: r
            trigger: {type: core.st2.webhook, parameters: {url: r}}
            action:
              ref: p.fixed
              parameters:
                message: changed
                colour: blue
            """);

        var problems = Load(packs.Root).Problems;

        Assert.Contains(problems, p => p.Field == "action.parameters.message" && p.Message.Contains("immutable", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Field == "action.parameters.colour" && p.Message.Contains("not a parameter", StringComparison.Ordinal));
    }

    [Fact]
    public void EmptyOptionalText_IsTakenAsNotGiven_AsStackStormsLoaderDoes_ButAnEmptyRequiredFieldIsReported()
    {
        using var packs = new TempPacks().WithPack("p");
        packs.Write("p/actions/quiet.yaml", """
            name: quiet
            description:
            runner_type: noop
            entry_point: ''
            parameters:
              message:
                type: string
                description: ""
            """);
        packs.Write("p/actions/nameless.yaml", "name: ''\nrunner_type: noop\n");

        var result = Load(packs.Root);

        var action = result.Catalog.Actions["p.quiet"];
        Assert.True(string.IsNullOrEmpty(action.Description));
        var problem = Assert.Single(result.Problems);
        Assert.EndsWith("nameless.yaml", problem.File, StringComparison.Ordinal);
        Assert.Equal("name", problem.Field);
        Assert.Contains("is required, and is empty", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SensorMetadata_RegistersItsTriggerTypes_AndWarnsThatItsCodeDoesNotRun()
    {
        // The shape of a StackStorm Exchange sensor file.
        using var packs = new TempPacks().WithPack("watch");
        packs.Write("watch/sensors/file_watch_sensor.yaml", """
            ---
            class_name: "FileWatchSensor"
            enabled: true
            entry_point: "file_watch_sensor.py"
            description: "Sensor which monitors files for new lines"
            trigger_types:
              -
                name: "file_watch.line"
                pack: "watch"
                description: "Trigger which indicates a new line has been detected"
                parameters_schema:
                  type: "object"
                  properties:
                    file_path:
                      type: "string"
                  additionalProperties: false
                payload_schema:
                  type: "object"
                  properties:
                    file_path:
                      type: "string"
                    line:
                      type: "string"
            """);
        packs.Write("watch/sensors/file_watch_sensor.py", "class FileWatchSensor(object):\n    pass\n");
        packs.Write("watch/rules/on_line.yaml", """
            name: on_line
            pack: watch
            trigger:
              type: watch.file_watch.line
              parameters:
                file_path: /var/log/syslog
            action:
              ref: core.noop
            """);

        var result = Load(packs.Root);

        Assert.Empty(result.Problems);
        var type = result.Catalog.TriggerTypes["watch.file_watch.line"];
        Assert.Equal("string", type.PayloadSchema!["properties"]!["line"]!["type"]!.GetValue<string>());
        Assert.Contains("watch.on_line", result.Catalog.Rules.Select(r => r.Ref));
        var warning = Assert.Single(result.Warnings);
        Assert.EndsWith("file_watch_sensor.yaml", warning.File, StringComparison.Ordinal);
        Assert.Contains("sensor 'FileWatchSensor' does not run here", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StackStormRunnersNotHere_AndAliases_AreWarnings_NamingTheFile_AndTheActionsLoad()
    {
        using var packs = new TempPacks().WithPack("st2like");
        packs.Write("st2like/actions/uuid.yaml", """
            ---
            name: uuid
            runner_type: python-script
            description: Generate a new UUID
            enabled: true
            entry_point: generate_uuid.py
            parameters:
              uuid_type:
                type: string
                default: uuid4
            """);
        packs.Write("st2like/actions/generate_uuid.py", "from st2common.runners.base_action import Action\n");
        packs.Write("st2like/actions/remote.yaml", "name: remote\nrunner_type: remote-shell-cmd\nentry_point: ''\n");
        packs.Write("st2like/aliases/uuid.yaml", "name: uuid\naction_ref: st2like.uuid\nformats: [\"uuid\"]\n");
        packs.Write("st2like/rules/make.yaml", "name: make\npack: st2like\ntrigger: {type: core.st2.webhook, parameters: {url: make}}\naction: {ref: st2like.uuid}\n");

        var result = Load(packs.Root);

        Assert.Empty(result.Problems);
        Assert.Equal("python-script", result.Catalog.Actions["st2like.uuid"].RunnerType);
        Assert.Contains("st2like.make", result.Catalog.Rules.Select(r => r.Ref));
        Assert.Collection(result.Warnings,
            remote => Assert.Contains("'remote-shell-cmd' runner is not supported here yet", remote.Message, StringComparison.Ordinal),
            alias => Assert.Contains("action aliases (ChatOps) are not supported", alias.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void PythonScriptAction_WhoseModuleIsMissing_IsAProblemNamingTheFileAndLine()
    {
        using var packs = new TempPacks().WithPack("py");
        packs.Write("py/actions/hello.yaml", "name: hello\nrunner_type: python-script\nentry_point: hello.py\n");

        var result = Load(packs.Root);

        var problem = Assert.Single(result.Problems);
        Assert.EndsWith("hello.yaml", problem.File, StringComparison.Ordinal);
        Assert.Equal(("entry_point", 3), (problem.Field, problem.Position.Line));
        Assert.Contains("Python module 'hello.py' does not exist", problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ConfigSchemaDefaults_FillTheKeysConfigYamlLacks()
    {
        using var packs = new TempPacks().WithPack("cfg");
        packs.Write("cfg/config.schema.yaml", """
            ---
            api_url:
              description: "Where the API is"
              type: "string"
              default: "https://api.example.com"
            timeout:
              type: "integer"
              default: 30
            token:
              type: "string"
              secret: true
            """);
        packs.Write("cfg/config.yaml", "timeout: 5\n");

        var result = Load(packs.Root);

        Assert.Empty(result.Problems);
        var config = result.Catalog.Packs["cfg"].Config;
        Assert.Equal("https://api.example.com", config["api_url"]!.GetValue<string>());
        Assert.Equal(5, config["timeout"]!.GetValue<long>());
        Assert.False(config.ContainsKey("token"));
    }

    [Fact]
    public void LeavingOutBroken_LoadsTheGoodPacks_AndLeavesOutTheBrokenOne_AndThoseThatNeededIt()
    {
        using var packs = new TempPacks().WithPack("good").WithPack("broken").WithPack("needs_broken");
        packs.Write("good/actions/hi.yaml", "name: hi\nrunner_type: noop\n");
        packs.Write("good/rules/hi.yaml", "name: hi\npack: good\ntrigger: {type: core.st2.webhook, parameters: {url: hi}}\naction: {ref: good.hi}\n");
        packs.Write("broken/actions/fine.yaml", "name: fine\nrunner_type: noop\n");
        packs.Write("broken/rules/bad.yaml", "name: bad\npack: broken\ntrigger: {type: core.st2.webhook, parameters: {url: bad}}\naction: {ref: broken.missing}\n");
        packs.Write("needs_broken/rules/uses.yaml", "name: uses\npack: needs_broken\ntrigger: {type: core.st2.webhook, parameters: {url: uses}}\naction: {ref: broken.fine}\n");

        var strict = Load(packs.Root);
        var lenient = new PackLoader(Runners).LoadLeavingOutBroken(packs.Root);

        Assert.Single(strict.Problems);
        Assert.Contains("good.hi", lenient.Catalog.Rules.Select(r => r.Ref));
        Assert.DoesNotContain("broken", lenient.Catalog.Packs.Keys);
        Assert.DoesNotContain("needs_broken", lenient.Catalog.Packs.Keys);
        Assert.True(lenient.Catalog.HasWebhook("hi"));
        Assert.False(lenient.Catalog.HasWebhook("uses"));
        var broken = Assert.Single(lenient.Packs, p => p.Name == "broken");
        Assert.False(broken.Loaded);
        Assert.Contains("action 'broken.missing' does not exist", Assert.Single(broken.Problems).Message, StringComparison.Ordinal);
        var cascaded = Assert.Single(lenient.Packs, p => p.Name == "needs_broken");
        Assert.False(cascaded.Loaded);
        Assert.Contains("action 'broken.fine' does not exist", Assert.Single(cascaded.Problems).Message, StringComparison.Ordinal);
        Assert.True(Assert.Single(lenient.Packs, p => p.Name == "good").Loaded);
        Assert.True(Assert.Single(lenient.Packs, p => p.Name == "core").Loaded);
        Assert.Equal(2, lenient.Problems.Count);
    }

    [Fact]
    public void RulesAndWorkflows_NameOtherPacksActions_ResolvedAcrossAllLoadedPacks()
    {
        using var packs = new TempPacks().WithPack("tools").WithPack("ops");
        packs.Write("tools/actions/ping.yaml", "name: ping\nrunner_type: noop\n");
        packs.Write("ops/rules/check.yaml", "name: check\npack: ops\ntrigger: {type: core.st2.webhook, parameters: {url: check}}\naction: {ref: tools.ping}\n");
        packs.Write("ops/actions/flow.yaml", "name: flow\nrunner_type: orquesta\nentry_point: workflows/flow.yaml\n");
        packs.Write("ops/actions/workflows/flow.yaml", "version: 1.0\ntasks:\n  first:\n    action: tools.ping\n    next: [{do: second}]\n  second:\n    action: core.echo message=\"done\"\n");

        var result = Load(packs.Root);

        Assert.Empty(result.Problems);
        Assert.Equal("tools.ping", Assert.Single(result.Catalog.Rules, r => r.Ref == "ops.check").ActionRef);
        Assert.Contains("ops.flow", result.Catalog.Actions.Keys);
    }

    [Fact]
    public void LeavingOutBroken_ANameDefinedInTwoPacks_LeavesBothOut_AndTheGenericHookNameIsReserved()
    {
        using var packs = new TempPacks().WithPack("aaa").WithPack("zzz").WithPack("other");
        packs.Write("aaa/webhooks/github.yaml", "url: github\n");
        packs.Write("zzz/webhooks/github.yaml", "url: github\nverify: {scheme: github, secret: gh_secret}\n");
        packs.Write("other/rules/st2.yaml", "name: st2\npack: other\ntrigger: {type: core.st2.webhook, parameters: {url: st2}}\naction: {ref: core.noop}\n");

        var result = new PackLoader(Runners).LoadLeavingOutBroken(packs.Root);

        Assert.False(Assert.Single(result.Packs, p => p.Name == "aaa").Loaded);
        Assert.False(Assert.Single(result.Packs, p => p.Name == "zzz").Loaded);
        Assert.Contains("already defined in", Assert.Single(Assert.Single(result.Packs, p => p.Name == "zzz").Problems).Message, StringComparison.Ordinal);
        Assert.Empty(result.Catalog.Webhooks);
        var reserved = Assert.Single(Assert.Single(result.Packs, p => p.Name == "other").Problems);
        Assert.Contains("StackStorm's generic webhook", reserved.Message, StringComparison.Ordinal);
        Assert.True(Assert.Single(result.Packs, p => p.Name == "core").Loaded);
    }

    [Fact]
    public void TemplateSyntaxError_IsReportedWithTheParameter()
    {
        using var packs = new TempPacks().WithPack("p");
        packs.Write("p/rules/r.yaml", """
            name: r
            trigger: {type: core.st2.webhook, parameters: {url: r}}
            action:
              ref: core.echo
              parameters:
                message: "Hello {{ trigger.body.name"
            """);

        var problem = Assert.Single(Load(packs.Root).Problems);

        Assert.Equal("action.parameters.message", problem.Field);
        Assert.Contains("never closed", problem.Message);
    }

    [Fact]
    public void TimerRule_WithBadParameters_IsReported()
    {
        using var packs = new TempPacks().WithPack("p");
        packs.Write("p/rules/r.yaml", """
            name: r
            trigger: {type: core.st2.IntervalTimer, parameters: {unit: fortnights, delta: 1}}
            action: {ref: core.noop}
            """);

        var problem = Assert.Single(Load(packs.Root).Problems);

        Assert.Equal("trigger.parameters", problem.Field);
        Assert.Contains("fortnights", problem.Message);
    }

    [Fact]
    public void PackConfig_AllowedNetworks_AreReadAndChecked()
    {
        using var packs = new TempPacks().WithPack("good").WithPack("bad");
        packs.Write("good/config.yaml", "allowed_networks: [10.1.0.0/16, '::1/128']\nteam: ops\n");
        packs.Write("bad/config.yaml", "allowed_networks: [not-a-network]\n");

        var result = Load(packs.Root);

        Assert.Equal(2, result.Catalog.Packs["good"].AllowedNetworks.Count);
        Assert.Equal("ops", result.Catalog.Packs["good"].Config["team"]!.GetValue<string>());
        var problem = Assert.Single(result.Problems);
        Assert.Equal("allowed_networks", problem.Field);
        Assert.Contains("not-a-network", problem.Message);
    }

    [Fact]
    public void Policies_AreLoadedAndChecked()
    {
        using var packs = new TempPacks().WithPack("p");
        packs.Write("p/actions/a.yaml", "name: a\nrunner_type: noop\n");
        packs.Write("p/policies/ok.yaml", "name: ok\nresource_ref: p.a\npolicy_type: action.retry\nparameters: {retry_on: timeout, max_retry_count: 3, delay: 2}\n");
        packs.Write("p/policies/concurrency.yaml", "name: c\nresource_ref: p.a\npolicy_type: action.concurrency\nparameters: {threshold: 2, action: cancel}\n");
        packs.Write("p/policies/by_host.yaml", "name: by_host\nresource_ref: p.a\npolicy_type: action.concurrency.attr\nparameters: {threshold: 1, attributes: [host]}\n");
        packs.Write("p/policies/missing.yaml", "name: m\nresource_ref: p.nope\npolicy_type: action.retry\n");
        packs.Write("p/policies/no_threshold.yaml", "name: n\nresource_ref: p.a\npolicy_type: action.concurrency\nparameters: {action: delay}\n");
        packs.Write("p/policies/zero.yaml", "name: z\nresource_ref: p.a\npolicy_type: action.concurrency\nparameters: {threshold: 0}\n");
        packs.Write("p/policies/bad_action.yaml", "name: b\nresource_ref: p.a\npolicy_type: action.concurrency\nparameters: {threshold: 1, action: drop}\n");
        packs.Write("p/policies/no_attributes.yaml", "name: na\nresource_ref: p.a\npolicy_type: action.concurrency.attr\nparameters: {threshold: 1}\n");
        packs.Write("p/policies/unknown.yaml", "name: u\nresource_ref: p.a\npolicy_type: action.throttle\n");

        var result = Load(packs.Root);

        var policy = Assert.Single(result.Catalog.RetryPolicies["p.a"]);
        Assert.Equal(("timeout", 3, TimeSpan.FromSeconds(2)), (policy.RetryOn, policy.MaxRetryCount, policy.Delay));
        var concurrency = result.Catalog.ConcurrencyPolicies["p.a"].OrderBy(c => c.Name).ToList();
        Assert.Equal(("by_host", 1, "delay", "host"), (concurrency[0].Name, concurrency[0].Threshold, concurrency[0].Action, Assert.Single(concurrency[0].Attributes)));
        Assert.Equal(("c", 2, "cancel", 0), (concurrency[1].Name, concurrency[1].Threshold, concurrency[1].Action, concurrency[1].Attributes.Count));
        Assert.Contains(result.Problems, p => p.File.EndsWith("missing.yaml", StringComparison.Ordinal) && p.Field == "resource_ref" && p.Message.Contains("'p.nope' does not exist", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.File.EndsWith("no_threshold.yaml", StringComparison.Ordinal) && p.Field == "parameters.threshold" && p.Message.Contains("is required", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.File.EndsWith("zero.yaml", StringComparison.Ordinal) && p.Field == "parameters.threshold" && p.Message.Contains("1 to 1000", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.File.EndsWith("bad_action.yaml", StringComparison.Ordinal) && p.Field == "parameters.action" && p.Message.Contains("'drop' is not delay or cancel", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.File.EndsWith("no_attributes.yaml", StringComparison.Ordinal) && p.Field == "parameters.attributes");
        Assert.Contains(result.Problems, p => p.File.EndsWith("unknown.yaml", StringComparison.Ordinal) && p.Field == "policy_type" && p.Message.Contains("unknown policy type 'action.throttle'", StringComparison.Ordinal));
        Assert.Equal(6, result.Problems.Count);
    }

    [Fact]
    public void UnknownField_IsReportedToCatchTypos()
    {
        using var packs = new TempPacks().WithPack("p");
        packs.Write("p/rules/r.yaml", """
            name: r
            trigger: {type: core.st2.webhook, parameters: {url: r}}
            critera: {}
            action: {ref: core.noop}
            """);

        var problem = Assert.Single(Load(packs.Root).Problems);

        Assert.Equal("critera", problem.Field);
        Assert.Equal(3, problem.Position.Line);
    }
}
