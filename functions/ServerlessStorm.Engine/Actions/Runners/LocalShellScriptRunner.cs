using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type local-shell-script: runs the pack's script named by <c>entry_point</c> (relative to the pack's
/// <c>actions/</c> folder) with the action's own parameters as arguments, as StackStorm does: named parameters as
/// <c>--name=value</c> (the prefix is <c>kwarg_op</c>; true as a bare <c>--name</c>; false, null and empty left out),
/// then every parameter with a <c>position</c>, in order, each keeping its slot (an unset one is an empty argument;
/// booleans are 1 and 0, lists comma-joined, objects JSON). Arguments are an argument vector, never a shell string,
/// so their values cannot become shell syntax.
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
        var own = context.Action.Parameters.Values.Where(p => !runnerParameters.Contains(p.Name)).ToList();
        var arguments = own.Where(p => p.Position is null).OrderBy(p => p.Name, StringComparer.Ordinal)
            .Select(p => Named(kwargOp + p.Name, context.Parameters[p.Name])).OfType<string>()
            .Concat(own.Where(p => p.Position is not null).OrderBy(p => p.Position).Select(p => Positional(context.Parameters[p.Name])));

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

    // StackStorm's named argument: left out when null, empty or false; a bare flag when true; lists and objects as
    // JSON here (StackStorm would print Python's repr of them).
    private static string? Named(string name, JsonNode? value) => value switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var text) => text.Length == 0 ? null : $"{name}={text}",
        JsonValue v when v.GetValueKind() is JsonValueKind.True => name,
        JsonValue v when v.GetValueKind() is JsonValueKind.False => null,
        JsonObject or JsonArray => $"{name}={value.ToJsonString()}",
        _ => $"{name}={Py.Str(Py.FromJson(value))}",
    };

    // StackStorm's serialize_positional_argument: every slot is kept, so an unset one is an empty argument.
    private static string Positional(JsonNode? value) => value switch
    {
        null => "",
        JsonValue v when v.GetValueKind() is JsonValueKind.True => "1",
        JsonValue v when v.GetValueKind() is JsonValueKind.False => "0",
        JsonArray list => string.Join(",", list.Select(item => item is JsonValue iv && iv.TryGetValue<string>(out var s) ? s : Py.Str(Py.FromJson(item)))),
        JsonObject obj => obj.Count == 0 ? "" : obj.ToJsonString(),
        _ => Py.Str(Py.FromJson(value)),
    };
}
