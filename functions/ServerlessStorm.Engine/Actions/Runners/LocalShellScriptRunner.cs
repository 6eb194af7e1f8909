using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type local-shell-script: runs the pack's script named by <c>entry_point</c> (relative to the pack's
/// <c>actions/</c> folder) with the action's own parameters as arguments, as StackStorm does: named parameters as
/// <c>--name=value</c> (the prefix is <c>kwarg_op</c>), then those with a <c>position</c> in order. Arguments are an
/// argument vector, never a shell string, so their values cannot become shell syntax.
/// </summary>
public sealed class LocalShellScriptRunner : IActionRunner
{
    public string RunnerType => "local-shell-script";

    public string? OutputKey => "stdout";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
        [ParameterReader.Define("kwarg_op", "string", defaultValue: "--", description: "Prefix of named arguments."), .. LocalProcess.CommonParameters];

    public Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        if (Script(context, out var error) is not { } script)
        {
            return Task.FromResult(RunnerResult.Failed([], error!));
        }

        var runnerParameters = RunnerParameters.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var kwargOp = ParameterReader.String(context.Parameters, "kwarg_op") ?? "--";
        var own = context.Action.Parameters.Values.Where(p => !runnerParameters.Contains(p.Name) && context.Parameters[p.Name] is not null).ToList();
        var arguments = own.Where(p => p.Position is null).OrderBy(p => p.Name, StringComparer.Ordinal)
            .Select(p => $"{kwargOp}{p.Name}={Text(context.Parameters[p.Name])}")
            .Concat(own.Where(p => p.Position is not null).OrderBy(p => p.Position).Select(p => Text(context.Parameters[p.Name])));

        // A script without its executable bit (common after a copy) still runs, through sh.
        var executable = OperatingSystem.IsWindows() || (File.GetUnixFileMode(script) & UnixFileMode.UserExecute) != 0;
        return executable
            ? LocalProcess.RunAsync(script, arguments, context, cancellationToken)
            : LocalProcess.RunAsync("/bin/sh", [script, .. arguments], context, cancellationToken);
    }

    private static string? Script(RunnerContext context, out string? error)
    {
        error = null;
        if (context.PackDirectory is null || string.IsNullOrEmpty(context.Action.EntryPoint))
        {
            error = $"{context.Action.Ref} has no entry_point script";
            return null;
        }

        if (!Packs.PackFiles.TryResolve(context.PackDirectory, context.Action.EntryPoint, out var script))
        {
            error = $"entry_point '{context.Action.EntryPoint}' is outside the pack's actions folder";
            return null;
        }

        if (!File.Exists(script))
        {
            error = $"entry_point script '{context.Action.EntryPoint}' does not exist in {Packs.PackFiles.ActionsFolder(context.PackDirectory)}";
            return null;
        }

        return script;
    }

    // StackStorm passes str(value): True/False, numbers as written; lists and objects as JSON here.
    private static string Text(JsonNode? value) => value switch
    {
        JsonObject or JsonArray => value.ToJsonString(),
        _ => Py.Str(Py.FromJson(value)),
    };
}
