using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Json;

namespace ServerlessStorm.Engine.Actions;

/// <summary>What a runner is given: the action, its resolved parameters and the execution it runs for.</summary>
public sealed record RunnerContext(string ExecutionId, ActionDefinition Action, JsonObject Parameters, string? PackDirectory)
{
    /// <summary>The action's pack (its <see cref="PackDefinition.Config"/> is the config as written, templates unrendered).</summary>
    public PackDefinition? Pack { get; init; }

    /// <summary>
    /// The pack's config as the action's code sees it: rendered for this execution from the datastore, secrets opened
    /// (and masked in the output). Every runner hands this one to pack code, not <see cref="PackDefinition.Config"/>.
    /// </summary>
    public JsonObject Config { get; init; } = [];

    /// <summary>Who the execution runs for (the caller who asked, a rule's or a workflow's user).</summary>
    public string? User { get; init; }

    /// <summary>The execution's trace tag (a workflow's tasks share it).</summary>
    public string? TraceTag { get; init; }

    /// <summary>The execution this one re-runs, and (a workflow) the tasks to run again although they succeeded.</summary>
    public string? ReRunOf { get; init; }

    public IReadOnlyList<string>? ReRunTasks { get; init; }

    /// <summary>Receives output while the action runs (stream name, text), for live tailing; null when nobody listens.</summary>
    public Action<string, string>? Output { get; init; }
}

/// <summary>
/// What a runner reports: a terminal status, the result object, and an error message when it failed. Two statuses
/// are not terminal: pending (an inquiry waits for a person) and running (handed off: it goes on elsewhere, a
/// workflow on its engine, and whoever runs it records its end).
/// </summary>
public sealed record RunnerResult(string Status, JsonObject Result, string? Error = null)
{
    public static RunnerResult HandedOff() => new(ExecutionStatus.Running, []);

    public static RunnerResult Succeeded(JsonObject result) => new(ExecutionStatus.Succeeded, result);

    public static RunnerResult Failed(JsonObject result, string error) => new(ExecutionStatus.Failed, result, error);
}

/// <summary>Runs actions of one runner type (StackStorm's runner_type).</summary>
public interface IActionRunner
{
    string RunnerType { get; }

    /// <summary>The parameter whose value is a shell command line, rendered with <see cref="ShellCommandTemplate"/>; null if none.</summary>
    string? ShellCommandParameter => null;

    /// <summary>The part of the result an action's output_schema describes (StackStorm's output_key); null: the whole result.</summary>
    string? OutputKey => null;

    /// <summary>The runner's own parameters, which every action of this runner has (StackStorm's runner parameters).</summary>
    IReadOnlyList<ParameterDefinition> RunnerParameters => [];

    Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken);
}

/// <summary>The runners known to this host, by runner type.</summary>
public sealed class RunnerRegistry
{
    private readonly Dictionary<string, IActionRunner> _runners;

    public RunnerRegistry(IEnumerable<IActionRunner> runners) =>
        _runners = runners.ToDictionary(r => r.RunnerType, StringComparer.Ordinal);

    /// <summary>
    /// The runners every host has. Python actions run with <paramref name="python"/>'s interpreters (the host's
    /// Python when not given) and reach <paramref name="keys"/> for their datastore calls (refused when not given).
    /// </summary>
    public static IReadOnlyList<IActionRunner> BuiltIn(Runners.EgressGuard egress, Python.IPythonEnvironments? python = null,
        Datastore.KeyValueService? keys = null, Microsoft.Extensions.Logging.ILoggerFactory? loggers = null, Func<Triggers.WebhookSensor>? webhooks = null,
        Python.IPythonLauncher? pythonLauncher = null, Func<string, string?>? injectDenial = null) =>
        [new Runners.NoopRunner(), new Runners.EchoRunner(), new Runners.LocalShellCommandRunner(), new Runners.LocalShellScriptRunner(),
         new Runners.HttpRequestRunner(egress), new Runners.InquirerRunner(), new Runners.DotnetActionRunner(), new Runners.InjectTriggerRunner(webhooks, injectDenial),
         new Python.PythonScriptRunner(python ?? new Python.HostPythonEnvironments(Microsoft.Extensions.Options.Options.Create(new Python.PythonOptions())),
             keys, loggers?.CreateLogger(typeof(Python.PythonScriptRunner).FullName!), pythonLauncher)];

    /// <summary>The built-in runners with the default egress guard (for tools that only load packs).</summary>
    public static RunnerRegistry Default => new(BuiltIn(new Runners.EgressGuard()));

    public IReadOnlyCollection<string> RunnerTypes => _runners.Keys;

    public bool TryGet(string runnerType, out IActionRunner runner) => _runners.TryGetValue(runnerType, out runner!);
}

internal static class ParameterReader
{
    public static ParameterDefinition Define(string name, string type, bool required = false, JsonNode? defaultValue = null, string? description = null, bool immutable = false, JsonArray? allowed = null) =>
        new(name, type, required, defaultValue, false, immutable, description, allowed, null);

    public static string? String(JsonObject parameters, string name) =>
        parameters[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    public static double? Number(JsonObject parameters, string name) =>
        JsonNumbers.TryGetDouble(parameters[name], out var d) ? d : null;

    public static bool? Boolean(JsonObject parameters, string name) =>
        parameters[name] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;
}
