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
        var child = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await ServerlessStorm.Testing.Eventually.TrueAsync(() => !Directory.Exists($"/proc/{child}") || File.ReadAllText($"/proc/{child}/stat").Contains(") Z ", StringComparison.Ordinal),
            TimeSpan.FromSeconds(5), "the background child to be killed");
        File.Delete(pidFile);
    }

    private static async Task<RunnerResult> RunTemplateAsync(string template, string name)
    {
        var parameters = ParameterResolver.FromTemplates(Local,
            new Dictionary<string, TemplatedValue> { ["cmd"] = TemplatedValue.Compile(JsonValue.Create(template)) },
            TemplateScope.ForTrigger(new JsonObject { ["body"] = new JsonObject { ["name"] = name } }), "cmd");
        return await new LocalShellCommandRunner().RunAsync(new RunnerContext("test", Local, parameters, null), CancellationToken.None);
    }

    private static Task<RunnerResult> RunAsync(JsonObject parameters) =>
        new LocalShellCommandRunner().RunAsync(new RunnerContext("test", Local, ParameterResolver.Resolve(Local, parameters), null), CancellationToken.None);

    public void Dispose() => File.Delete(_marker);
}
