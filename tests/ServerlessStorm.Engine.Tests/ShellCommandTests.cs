using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Tests;

public sealed class ShellCommandTests : IDisposable
{
    private static readonly ActionDefinition Local = new("core", "local", "local-shell-cmd", null, "", true, new Dictionary<string, ParameterDefinition>
    {
        ["cmd"] = new("cmd", "string", true, null, false, false, null, null, null),
        ["cwd"] = new("cwd", "string", false, null, false, false, null, null, null),
        ["env"] = new("env", "object", false, null, false, false, null, null, null),
        ["timeout"] = new("timeout", "integer", false, JsonValue.Create(60), false, false, null, null, null),
    }, "local.yaml");

    private readonly string _marker = Path.Combine(Path.GetTempPath(), "storm-injection-" + Guid.NewGuid().ToString("N"));

    public static TheoryData<string> Corpus() =>
    [
        "$(touch MARKER)",
        "`touch MARKER`",
        "; touch MARKER",
        "&& touch MARKER",
        "| touch MARKER",
        "\"; touch MARKER; echo \"",
        "'; touch MARKER; echo '",
        "${IFS}touch${IFS}MARKER",
        "$(touch MARKER)\ntouch MARKER",
        "\\\"$(touch MARKER)\\\"",
        "> MARKER",
        "* ? [a] ~ {a,b} $HOME !! # \\ \t",
        "ünïcødé ✓ \u0001",
    ];

    [Theory]
    [MemberData(nameof(Corpus))]
    public async Task CmdTemplate_PayloadWithShellSyntax_IsPrintedNotRun(string hostile)
    {
        var payload = hostile.Replace("MARKER", _marker, StringComparison.Ordinal);
        foreach (var template in new[] { "printf '%s' \"Hello {{ trigger.body.name }}\"", "printf '%s%s' 'Hello ' {{ trigger.body.name }}", "printf '%s' 'Hello {{ trigger.body.name }}'" })
        {
            var result = await RunTemplateAsync(template, payload);

            Assert.Equal(ExecutionStatus.Succeeded, result.Status);
            Assert.Equal("Hello " + payload, result.Result["stdout"]!.GetValue<string>());
            Assert.False(File.Exists(_marker), $"the payload ran as shell code with template {template}");
        }
    }

    [Fact]
    public void Render_QuotesEachSubstitutionForWhereItStands()
    {
        var scope = TemplateScope.ForTrigger(JsonNode.Parse("""{"a": "1", "b": "2", "c": "3"}"""));

        var rendered = ShellCommandTemplate.Render(Template.Parse("x {{ trigger.a }} \"{{ trigger.b }}\" '{{ trigger.c }}'"), scope);

        Assert.Equal("x \"${STORM_ARG_1}\" \"${STORM_ARG_2}\" ''\"${STORM_ARG_3}\"''", rendered.Script);
        Assert.Equal(["1", "2", "3"], rendered.Variables.Values);
    }

    [Fact]
    public async Task LiteralCmd_FromTheOperator_IsAShellLine()
    {
        var result = await RunAsync(new JsonObject { ["cmd"] = "printf 'a\\nb\\n' | wc -l" });

        Assert.Equal("2", result.Result["stdout"]!.GetValue<string>().Trim());
    }

    [Fact]
    public async Task HostEnvironment_IsNotInherited()
    {
        Environment.SetEnvironmentVariable("STORM_TEST_SECRET", "do-not-leak");
        try
        {
            var result = await RunAsync(new JsonObject { ["cmd"] = "echo \"[$STORM_TEST_SECRET][$GREETING]\"", ["env"] = new JsonObject { ["GREETING"] = "hi" } });

            Assert.Equal("[][hi]", result.Result["stdout"]!.GetValue<string>());
        }
        finally
        {
            Environment.SetEnvironmentVariable("STORM_TEST_SECRET", null);
        }
    }

    [Fact]
    public async Task NonZeroExit_IsAFailureWithStderrAndCode()
    {
        var result = await RunAsync(new JsonObject { ["cmd"] = "echo oops >&2; exit 3" });

        Assert.Equal(ExecutionStatus.Failed, result.Status);
        Assert.Equal(3, result.Result["return_code"]!.GetValue<int>());
        Assert.Equal("oops", result.Result["stderr"]!.GetValue<string>());
        Assert.Contains("exited with code 3", result.Error);
    }

    [Fact]
    public async Task Timeout_KillsTheWholeProcessTree()
    {
        var pidFile = _marker + ".pid";
        var result = await RunAsync(new JsonObject { ["cmd"] = $"sleep 30 & echo $! > {pidFile}; wait", ["timeout"] = 1 });

        Assert.Equal(ExecutionStatus.Timeout, result.Status);
        await AssertKilledAsync(pidFile);
    }

    [Fact]
    public async Task Timeout_CoversABackgroundProcessThatKeepsTheOutputOpen()
    {
        // The shell exits at once; its background child holds stdout, so the action is not over until the timeout.
        var pidFile = _marker + ".pid";
        var result = await RunAsync(new JsonObject { ["cmd"] = $"sleep 30 & echo $! > {pidFile}; echo started", ["timeout"] = 1 });

        Assert.Equal(ExecutionStatus.Timeout, result.Status);
        Assert.Equal("started", result.Result["stdout"]!.GetValue<string>());
        Assert.Equal(-9, result.Result["return_code"]!.GetValue<int>());
        await AssertKilledAsync(pidFile);
    }

    [Fact]
    public async Task Timeout_KillsAProcessThatLeftTheTree()
    {
        // The subshell exits, so its child is reparented away from the shell: only the session still holds it.
        var pidFile = _marker + ".pid";
        var result = await RunAsync(new JsonObject { ["cmd"] = $"(sleep 30 > /dev/null 2>&1 & echo $! > {pidFile}); sleep 30", ["timeout"] = 1 });

        Assert.Equal(ExecutionStatus.Timeout, result.Status);
        await AssertKilledAsync(pidFile);
    }

    [Fact]
    public async Task Cancellation_KillsEverythingTheCommandStarted()
    {
        var pidFile = _marker + ".pid";
        using var cancel = new CancellationTokenSource();
        var run = RunAsync(new JsonObject { ["cmd"] = $"sleep 30 & echo $! > {pidFile}; wait", ["timeout"] = 60 }, cancel.Token);
        await ServerlessStorm.Testing.Eventually.TrueAsync(() => File.Exists(pidFile) && File.ReadAllText(pidFile).Trim().Length > 0, TimeSpan.FromSeconds(10), "the command to start");

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        await AssertKilledAsync(pidFile);
    }

    [Fact]
    public async Task ADaemonWithItsOutputElsewhere_DoesNotHoldTheAction()
    {
        var pidFile = _marker + ".pid";
        var result = await RunAsync(new JsonObject { ["cmd"] = $"sleep 30 > /dev/null 2>&1 & echo $! > {pidFile}; echo done", ["timeout"] = 20 });
        var daemon = ReadPid(pidFile);
        try
        {
            Assert.Equal(ExecutionStatus.Succeeded, result.Status); // not a timeout after 20 s
            Assert.Equal("done", result.Result["stdout"]!.GetValue<string>());
            Assert.False(IsGone(daemon), "a daemon the action left running is not the action's to kill");
        }
        finally
        {
            System.Diagnostics.Process.GetProcessById(daemon).Kill();
        }
    }

    [Fact]
    public async Task Output_BeyondTheLimit_IsCutWithAVisibleMarker()
    {
        var result = await RunAsync(new JsonObject { ["cmd"] = $"head -c {LocalShellCommandRunner.OutputLimit + 5000} /dev/zero | tr '\\0' a; echo tail >&2" });

        Assert.Equal(ExecutionStatus.Succeeded, result.Status);
        var stdout = result.Result["stdout"]!.GetValue<string>();
        Assert.Equal(new string('a', LocalShellCommandRunner.OutputLimit), stdout[..LocalShellCommandRunner.OutputLimit]);
        Assert.EndsWith("\n[… 5000 more characters cut by ServerlessStorm]", stdout);
        Assert.Equal("tail", result.Result["stderr"]!.GetValue<string>());
    }

    private static int ReadPid(string pidFile)
    {
        var pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        File.Delete(pidFile);
        return pid;
    }

    private static bool IsGone(int pid) =>
        !Directory.Exists($"/proc/{pid}") || File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);

    private static Task AssertKilledAsync(string pidFile)
    {
        var child = ReadPid(pidFile);
        return ServerlessStorm.Testing.Eventually.TrueAsync(() => IsGone(child), TimeSpan.FromSeconds(5), $"process {child}, started by the command, to be killed");
    }

    private static async Task<RunnerResult> RunTemplateAsync(string template, string name)
    {
        var parameters = ParameterResolver.FromTemplates(Local,
            new Dictionary<string, TemplatedValue> { ["cmd"] = TemplatedValue.Compile(JsonValue.Create(template)) },
            TemplateScope.ForTrigger(new JsonObject { ["body"] = new JsonObject { ["name"] = name } }), "cmd");
        return await new LocalShellCommandRunner().RunAsync(new RunnerContext("test", Local, parameters, null), CancellationToken.None);
    }

    private static Task<RunnerResult> RunAsync(JsonObject parameters, CancellationToken cancellationToken = default) =>
        new LocalShellCommandRunner().RunAsync(new RunnerContext("test", Local, ParameterResolver.Resolve(Local, parameters), null), cancellationToken);

    public void Dispose() => File.Delete(_marker);
}
