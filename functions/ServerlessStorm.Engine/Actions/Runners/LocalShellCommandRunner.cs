using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type local-shell-cmd: runs <c>cmd</c> with <c>/bin/sh -c</c> on this host (see <see cref="LocalProcess"/>
/// for the environment, timeout and output rules, and <see cref="ShellCommandTemplate"/> for how templates reach it).
/// </summary>
public sealed class LocalShellCommandRunner : IActionRunner
{
    public const int DefaultTimeoutSeconds = LocalProcess.DefaultTimeoutSeconds;

    public const int OutputLimit = LocalProcess.OutputLimit;

    public string RunnerType => "local-shell-cmd";

    public string? OutputKey => "stdout";

    public string? ShellCommandParameter => "cmd";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
        [ParameterReader.Define("cmd", "string", required: true, description: "The command line, run by /bin/sh -c."), .. LocalProcess.CommonParameters];

    public Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        var cmd = ParameterReader.String(context.Parameters, "cmd");
        return string.IsNullOrWhiteSpace(cmd)
            ? Task.FromResult(RunnerResult.Failed([], "parameter 'cmd' is empty"))
            : LocalProcess.RunAsync("/bin/sh", ["-c", cmd], context, cancellationToken);
    }
}
