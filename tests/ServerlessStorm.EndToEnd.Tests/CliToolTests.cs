using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>The storm verbs that work on files: pack validate, rule test, and serve's refusal of invalid packs.</summary>
public sealed class CliToolTests : IDisposable
{
    private readonly TempPacks _packs = new();

    public CliToolTests()
    {
        _packs.WithPack("broken");
        _packs.Write("broken/actions/greet.yaml", "name: greet\nrunner_type: echo\nparameters:\n  message: {type: string\n");
        _packs.Write("broken/rules/greet.yaml", "name: greet\npack: broken\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: greet}\naction:\n  ref: broken.missing\n");
    }

    [Fact]
    public async Task PackValidate_ReportsTheYamlErrorAndTheMissingAction_WithFileAndLine()
    {
        var result = await StormProcess.RunAsync("pack", "validate", _packs.Root);

        Assert.Equal(1, result.ExitCode);
        Assert.Matches(@"broken/actions/greet\.yaml:\d+:\d+: YAML error", result.StdOut);
        Assert.Contains("broken/rules/greet.yaml:7:8: action.ref: action 'broken.missing' does not exist", result.StdOut);
        Assert.Contains("2 problem(s) found", result.StdErr);
    }

    [Fact]
    public async Task WorkflowInspect_ListsEveryProblem_AndPassesAGoodWorkflow()
    {
        var bad = _packs.Write("wf/bad.yaml", "version: 1.0\ntasks:\n  a:\n    action: core.nope\n    next: [{do: b}]\n");
        var good = _packs.Write("wf/good.yaml", "version: 1.0\ntasks:\n  a:\n    action: core.noop\n    next: [{do: b}]\n  b: {action: core.echo, input: {message: hi}}\n");

        var failed = await StormProcess.RunAsync("workflow", "inspect", bad, "--packs", "packs");
        var passed = await StormProcess.RunAsync("workflow", "inspect", good, "--packs", "packs");

        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("bad.yaml:4:13: tasks.a.action: action 'core.nope' does not exist", failed.StdOut);
        Assert.Contains("tasks.a.next[0].do: 'b' is neither a task nor an engine command", failed.StdOut);
        Assert.Contains("2 problem(s) found", failed.StdErr);
        Assert.Equal(0, passed.ExitCode);
        Assert.Equal("OK: 2 task(s), starting at a", passed.StdOut.Trim());
    }

    [Fact]
    public async Task PackValidate_RepositoryPacks_AreValid()
    {
        var result = await StormProcess.RunAsync("pack", "validate", "packs");

        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("OK: 2 pack(s)", result.StdOut);
    }

    [Fact]
    public async Task Serve_Strict_WithAnInvalidPack_RefusesToStartAndSaysWhy()
    {
        var result = await StormProcess.RunAsync("serve", "--strict", "--port", AzuriteFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), "--packs", _packs.Root);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("refusing to start", result.StdErr);
        Assert.Contains("action 'broken.missing' does not exist", result.StdErr);
        Assert.Contains("YAML error", result.StdErr);
    }

    [Fact]
    public async Task RuleTest_ExitCodesFollowSt2RuleTester()
    {
        var rule = Path.Combine(RepositoryPaths.Packs, "examples", "rules", "hello.yaml");
        var matching = _packs.Write("ti-match.json", """{"trigger": "core.st2.webhook", "payload": {"headers": {}, "body": {"name": "storm"}}}""");
        var missing = _packs.Write("ti-nomatch.json", """{"trigger": "core.st2.webhook", "payload": {"body": {}}}""");
        var otherTrigger = _packs.Write("ti-other.json", """{"trigger": "core.st2.CronTimer", "payload": {}}""");
        var invalid = _packs.Write("ti-invalid.json", """{"trigger": """);

        var match = await StormProcess.RunAsync("rule", "test", "--rule", rule, "--trigger-instance", matching);
        var noMatch = await StormProcess.RunAsync("rule", "test", "--rule", rule, "--trigger-instance", missing);
        var wrongTrigger = await StormProcess.RunAsync("rule", "test", "--rule", rule, "--trigger-instance", otherTrigger);
        var bad = await StormProcess.RunAsync("rule", "test", "--rule", rule, "--trigger-instance", invalid);
        var badRule = await StormProcess.RunAsync("rule", "test", "--rule", Path.Combine(_packs.Root, "broken/actions/greet.yaml"), "--trigger-instance", matching);

        Assert.Equal(0, match.ExitCode);
        Assert.Contains("matches", match.StdOut);
        Assert.Contains("core.local", match.StdOut);
        Assert.Contains("\"STORM_ARG_1\": \"storm\"", match.StdOut);
        Assert.Equal(1, noMatch.ExitCode);
        Assert.Contains("criterion 'trigger.body.name' (exists) did not match", noMatch.StdOut);
        Assert.Equal(1, wrongTrigger.ExitCode);
        Assert.Contains("core.st2.CronTimer", wrongTrigger.StdOut);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("not valid JSON", bad.StdErr);
        Assert.Equal(2, badRule.ExitCode);
    }

    [Fact]
    public async Task RuleTest_ShowsTheCommandAsItReallyRuns_WithThePayloadInAVariableNeverInTheShellLine()
    {
        var rule = Path.Combine(RepositoryPaths.Packs, "examples", "rules", "hello.yaml");
        var hostile = _packs.Write("ti-hostile.json", """{"trigger": "core.st2.webhook", "payload": {"body": {"name": "$(id)"}}}""");
        _packs.WithPack("kv");
        _packs.Write("kv/actions/call.yaml", "name: call\nrunner_type: local-shell-cmd\nparameters:\n  port: {type: integer, default: '{{ st2kv.system.port }}'}\n"
            + "  cmd: {default: 'curl -s \"http://h:{{ port }}/{{ path }}\"', immutable: true}\n  path: {type: string}\n");
        var kvRule = _packs.Write("kv/rules/call.yaml", "name: call\npack: kv\ntrigger: {type: core.st2.webhook, parameters: {url: call}}\n"
            + "action: {ref: kv.call, parameters: {path: '{{ trigger.body.name }}'}}\n");

        var shown = await StormProcess.RunAsync("rule", "test", "--rule", rule, "--trigger-instance", hostile);
        var withDatastore = await StormProcess.RunAsync("rule", "test", "--rule", kvRule, "--trigger-instance", hostile);
        var noAction = await StormProcess.RunAsync("rule", "test", "--rule", Path.Combine(_packs.Root, "broken/rules/greet.yaml"), "--trigger-instance", hostile);

        Assert.Equal(0, shown.ExitCode);
        Assert.Contains("The command runs as: /bin/sh -c 'echo \"Hello ${STORM_ARG_1}\"'", shown.StdOut);
        Assert.Contains("with STORM_ARG_1='$(id)'", shown.StdOut);
        Assert.DoesNotContain("Hello $(id)", shown.StdOut);
        Assert.Equal(0, withDatastore.ExitCode);
        Assert.Contains("st2kv.system.port", withDatastore.StdOut); // the datastore is not read: its keys are shown
        Assert.Contains("curl -s \"http://h:${STORM_ARG_1}/${STORM_ARG_2}\"", withDatastore.StdOut);
        Assert.Equal(0, noAction.ExitCode);
        Assert.Contains("action broken.missing is not in", noAction.StdErr);
    }

    [Fact]
    public async Task RuleTest_WithJsonLines_PrintsOneResultPerTriggerInstance()
    {
        var rule = Path.Combine(RepositoryPaths.Packs, "examples", "rules", "notify.yaml");
        var lines = _packs.Write("recorded.jsonl", string.Join('\n',
            """{"trigger": "core.st2.webhook", "payload": {"body": {"severity": "critical", "notify_url": "http://chat/x"}}}""",
            """{"trigger": "core.st2.webhook", "payload": {"body": {"severity": "info", "notify_url": "http://chat/x"}}}""",
            "",
            """{"trigger": "core.st2.webhook", "payload": {"body": {"severity": "warning"}}}"""));
        var broken = _packs.Write("broken.jsonl", """{"trigger": "core.st2.webhook", "payload": {"body": {"severity": "critical", "notify_url": "u"}}}""" + "\n{oops\n");

        var result = await StormProcess.RunAsync("rule", "test", "--rule", rule, "--trigger-instances", lines);
        var withInvalid = await StormProcess.RunAsync("rule", "test", "--rule", rule, "--trigger-instances", broken);

        Assert.Equal(1, result.ExitCode);
        Assert.Equal(
            ["line 1: matches", "line 2: does not match: criterion 'trigger.body.severity' (regex) did not match", "line 4: does not match: criterion 'trigger.body.notify_url' (exists) did not match"],
            result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("1 of 3 trigger instance(s) match examples.notify", result.StdErr);
        Assert.Equal(2, withInvalid.ExitCode);
        Assert.Contains("line 2: invalid: not valid JSON", withInvalid.StdOut);
    }

    public void Dispose() => _packs.Dispose();
}
