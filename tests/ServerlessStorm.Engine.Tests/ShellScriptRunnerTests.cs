using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

public sealed class ShellScriptRunnerTests : IDisposable
{
    private readonly TempPacks _packs = new();
    private readonly RunnerRegistry _runners = RunnerRegistry.Default;

    private PackLoadResult Load() => new PackLoader(_runners).LoadFrom(_packs.Root);

    private async Task<RunnerResult> RunAsync(string actionRef, JsonObject parameters)
    {
        var result = Load();
        Assert.True(result.IsValid, string.Join("\n", result.Problems));
        var action = result.Catalog.Actions[actionRef];
        var resolved = ParameterResolver.Resolve(action, parameters);
        return await new LocalShellScriptRunner().RunAsync(new RunnerContext("t", action, resolved, result.Catalog.Packs[action.Pack].Directory), CancellationToken.None);
    }

    // s.args: a script that prints each argument it got in brackets; parameters is the YAML under "parameters:".
    private void WriteArgsAction(string parameters)
    {
        _packs.WithPack("s");
        _packs.Write("s/actions/args.sh", "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\n");
        _packs.Write("s/actions/args.yaml", "name: args\nrunner_type: local-shell-script\nentry_point: args.sh\nparameters:\n"
            + string.Join("\n", parameters.Split('\n').Select(line => "  " + line.Trim())) + "\n");
    }

    public static TheoryData<string> Metacharacters() =>
    [
        "plain", "two words", "$(touch /tmp/storm-never)", "`id`", "; rm -rf ~", "a | b", "a && b", "'single'", "\"double\"",
        "back\\slash", "$HOME", "${IFS}", "*", "?", "[a-z]", "~", "#comment", "new\nline", "tab\there", "--option=value", "-n", "é ✓",
    ];

    [Theory]
    [MemberData(nameof(Metacharacters))]
    public async Task Arguments_ReachTheScriptUnchanged(string value)
    {
        WriteArgsAction("""
              first: {type: string, position: 0}
              second: {type: string, position: 1}
              named: {type: string}
            """);

        var result = await RunAsync("s.args", new JsonObject { ["first"] = value, ["second"] = "2", ["named"] = value });

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        Assert.Equal($"[--named={value}][{value}][2]", result.Result["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task ExampleDiskUsage_RunsAndFailsAboveItsThreshold()
    {
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepositoryPaths.Packs, "examples"), "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(_packs.Root, "examples", Path.GetRelativePath(Path.Combine(RepositoryPaths.Packs, "examples"), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }

        var ok = await RunAsync("examples.disk_usage", new JsonObject { ["path"] = "/", ["threshold"] = 100 });
        var full = await RunAsync("examples.disk_usage", new JsonObject { ["path"] = "/", ["threshold"] = -1 });

        Assert.Equal(ExecutionStatus.Succeeded, ok.Status);
        Assert.Matches(@"^/ is \d+% full \(threshold 100%\)$", ok.Result["stdout"]!.GetValue<string>());
        Assert.Equal(ExecutionStatus.Failed, full.Status);
    }

    [Fact]
    public async Task ScriptWithoutExecutableBit_StillRuns()
    {
        _packs.WithPack("s");
        var script = _packs.Write("s/actions/plain.sh", "echo plain\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        _packs.Write("s/actions/plain.yaml", "name: plain\nrunner_type: local-shell-script\nentry_point: plain.sh\n");

        var result = await RunAsync("s.plain", []);

        Assert.Equal("plain", result.Result["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task Arguments_AreSerializedAsStackStormDoes()
    {
        WriteArgsAction("""
              first: {type: string, position: 0}
              second: {type: string, position: 1}
              flag: {type: boolean, position: 2}
              list: {type: array, position: 3}
              off: {type: boolean, position: 4}
              count: {type: integer}
              verbose: {type: boolean}
              quiet: {type: boolean}
              empty: {type: string}
              tags: {type: array}
            """);

        var result = await RunAsync("s.args", new JsonObject
        {
            ["second"] = "B", ["flag"] = true, ["list"] = new JsonArray("x", "y"), ["off"] = false,
            ["count"] = 5, ["verbose"] = true, ["quiet"] = false, ["empty"] = "", ["tags"] = new JsonArray("a"),
        });

        // Named first (false, null and empty left out; true a bare flag), then every position in its slot.
        Assert.Equal("[--count=5][--tags=[\"a\"]][--verbose][][B][1][x,y][0]", result.Result["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task Script_TimesOut_AndIsCanceled_WithEverythingItStarted()
    {
        _packs.WithPack("s");
        _packs.Write("s/actions/slow.sh", "#!/bin/sh\nsleep 30 &\nwait\n");
        _packs.Write("s/actions/slow.yaml", "name: slow\nrunner_type: local-shell-script\nentry_point: slow.sh\nparameters:\n  timeout: {default: 1}\n");

        var timedOut = await RunAsync("s.slow", []);
        Assert.Equal(ExecutionStatus.Timeout, timedOut.Status);
        Assert.Equal(-9, timedOut.Result["return_code"]!.GetValue<int>());

        var result = Load();
        var action = result.Catalog.Actions["s.slow"];
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => new LocalShellScriptRunner().RunAsync(
            new RunnerContext("t", action, ParameterResolver.Resolve(action, new JsonObject { ["timeout"] = 60 }), result.Catalog.Packs["s"].Directory), cancel.Token));
    }

    [Fact]
    public void MissingOrEscapingScript_IsALoadError()
    {
        _packs.WithPack("s");
        _packs.Write("s/actions/missing.yaml", "name: missing\nrunner_type: local-shell-script\nentry_point: nope.sh\n");
        _packs.Write("s/actions/escape.yaml", "name: escape\nrunner_type: local-shell-script\nentry_point: ../../../etc/passwd\n");
        _packs.Write("s/actions/none.yaml", "name: none\nrunner_type: local-shell-script\n");

        var problems = Load().Problems;

        Assert.Contains(problems, p => p.File.EndsWith("missing.yaml", StringComparison.Ordinal) && p.Message.Contains("does not exist", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.File.EndsWith("escape.yaml", StringComparison.Ordinal) && p.Message.Contains("outside the pack", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.File.EndsWith("none.yaml", StringComparison.Ordinal) && p.Field == "entry_point");
    }

    public void Dispose() => _packs.Dispose();
}
