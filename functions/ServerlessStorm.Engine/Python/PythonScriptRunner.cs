using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Python;

/// <summary>
/// runner_type python-script: StackStorm's Python actions, unchanged. The module named by <c>entry_point</c>
/// (relative to the pack's <c>actions/</c> folder) defines a subclass of
/// <c>st2common.runners.base_action.Action</c> (as StackStorm's loader: the first by name of the classes it defines
/// that implement <c>run</c>, so a base class beside it is passed over); its <c>run(**parameters)</c> runs in a fresh Python process with
/// <c>self.config</c> (the pack's config), <c>self.logger</c> and <c>self.action_service</c> (the datastore).
/// </summary>
/// <remarks>
/// As StackStorm's python runner: the return value is the result, a <c>(True|False, result)</c> tuple sets the
/// status (<c>(None, result)</c> sets none), values JSON lacks are written as orjson writes them (datetimes in ISO
/// 8601, UUIDs as text, sets as lists, NaN as null; anything else as its text), an exception fails with its traceback in stderr and exit code 1, <c>sys.exit(n)</c> is exit code n; the
/// result is <c>{"result", "stdout", "stderr", "exit_code"}</c> with output_key <c>result</c>. The module path is
/// StackStorm's: the pack's <c>lib/</c> (its common libraries) and <c>actions/lib</c> first, then the interpreter's
/// own, the project's stand-ins for st2common and st2reactor, and the action's folder last (an action file named like
/// a standard module does not hide it); <c>PYTHONPATH</c> in the action's <c>env</c> is ignored, as there. The process gets a
/// clean environment (the shell runners' one) with StackStorm's <c>ST2_ACTION_*</c> variables, and a timeout or a
/// cancel kills everything it started.
/// </remarks>
public sealed class PythonScriptRunner(IPythonEnvironments environments, KeyValueService? keys = null, ILogger? logger = null, IPythonLauncher? launcher = null) : IActionRunner
{
    public const string Type = "python-script";

    /// <summary>StackStorm's default timeout of a Python action, in seconds.</summary>
    public const int DefaultTimeoutSeconds = 600;

    private static readonly JsonArray LogLevels = ["AUDIT", "CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"];

    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    public string RunnerType => Type;

    public string? OutputKey => "result";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
    [
        ParameterReader.Define("debug", "boolean", defaultValue: false, description: "Passed to the action as ST2_ACTION_DEBUG."),
        ParameterReader.Define("content_version", "string", description: "Not supported: packs are not git work trees here; an execution that sets it fails."),
        ParameterReader.Define("env", "object", description: "Environment variables; nothing else is inherited but PATH, HOME and LANG."),
        ParameterReader.Define("timeout", "integer", defaultValue: DefaultTimeoutSeconds, description: "Seconds before the action and everything it started are killed."),
        ParameterReader.Define("log_level", "string", defaultValue: "DEBUG", description: "The lowest level self.logger writes to stderr.", allowed: LogLevels),
    ];

    /// <summary>What is wrong with an action's entry_point (missing, outside actions/, not a file); null when it is usable.</summary>
    public static string? EntryPointProblem(string packDirectory, string? entryPoint, out string? module)
    {
        module = null;
        if (string.IsNullOrEmpty(entryPoint))
        {
            return "a python-script action needs entry_point (its Python module, relative to actions/)";
        }

        if (!PackFiles.TryResolve(packDirectory, entryPoint, out var path))
        {
            return $"'{entryPoint}' is outside the pack's actions folder";
        }

        if (!File.Exists(path))
        {
            return $"Python module '{entryPoint}' does not exist in {PackFiles.ActionsFolder(packDirectory)}";
        }

        module = path;
        return null;
    }

    public async Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        if (context.PackDirectory is null)
        {
            return RunnerResult.Failed([], $"{context.Action.Ref} has no pack folder to load its Python module from");
        }

        if (EntryPointProblem(context.PackDirectory, context.Action.EntryPoint, out var module) is { } problem)
        {
            return RunnerResult.Failed([], $"{context.Action.Ref}: {problem}");
        }

        if (ParameterReader.String(context.Parameters, "content_version") is { Length: > 0 })
        {
            return RunnerResult.Failed([], "content_version is not supported: packs are not git work trees here");
        }

        string? interpreter;
        try
        {
            interpreter = (launcher ?? Local).ChoosesInterpreter
                ? environments.InterpreterFor(context.Pack ?? new PackDefinition(context.Action.Pack, "", "", context.PackDirectory))
                : null;
        }
        catch (PythonEnvironmentException ex)
        {
            return RunnerResult.Failed([], ex.Message);
        }

        var runnerParameters = RunnerParameters.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        // StackStorm passes every parameter the action declares (None when unset), never the runner's.
        var parameters = new JsonObject();
        foreach (var name in context.Action.Parameters.Keys.Where(n => !runnerParameters.Contains(n)).Order(StringComparer.Ordinal))
        {
            parameters[name] = context.Parameters[name]?.DeepClone();
        }

        var packDirectory = Path.GetFullPath(context.PackDirectory);
        var job = new JsonObject
        {
            ["mode"] = "action",
            ["parameters"] = parameters,
            ["config"] = context.Config.DeepClone(),
            ["log_level"] = ParameterReader.String(context.Parameters, "log_level") ?? "DEBUG",
        };

        var debug = ParameterReader.Boolean(context.Parameters, "debug") ?? false;
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        if (context.Parameters["env"] is JsonObject env)
        {
            foreach (var (name, value) in env)
            {
                if (name.Equals("PYTHONPATH", StringComparison.OrdinalIgnoreCase))
                {
                    // As StackStorm's python runner: the module path is the pack's, not the action's to change.
                    _logger.PythonEnvIgnored(context.Action.Ref, name);
                    continue;
                }

                environment[name] = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "";
            }
        }

        // StackStorm's variables win over the action's env, as in its runner.
        environment["ST2_ACTION_PACK_NAME"] = context.Action.Pack;
        environment["ST2_ACTION_EXECUTION_ID"] = context.ExecutionId;
        environment["ST2_ACTION_DEBUG"] = debug ? "True" : "False";
        // The pack's common libraries (lib/) then actions/lib, as StackStorm orders them on PYTHONPATH.
        PythonHostProcess.SetPackPaths(job, environment, packDirectory, module!, Path.Combine(packDirectory, "lib"), Path.Combine(PackFiles.ActionsFolder(packDirectory), "lib"));

        var timeout = TimeSpan.FromSeconds(ParameterReader.Number(context.Parameters, "timeout") ?? DefaultTimeoutSeconds);
        var callbacks = new PythonCallbacks
        {
            Output = context.Output,
            Call = (call, token) => DatastoreAsync(context.Action.Pack, call, token),
        };

        PythonOutcome outcome;
        try
        {
            // The host that runs it kills it by itself a little after the timeout, should this side be lost meanwhile.
            var launch = new PythonLaunch(context.ExecutionId, PackFolder(packDirectory), [], environment, null, timeout + PythonHostProcess.KillGrace) { Interpreter = interpreter };
            outcome = await PythonHostProcess.RunAsync(launcher ?? Local, launch, job, timeout, callbacks, _logger, cancellationToken);
        }
        catch (PythonEnvironmentException ex)
        {
            return RunnerResult.Failed([], ex.Message);
        }

        return Result(outcome, timeout);
    }

    private static readonly LocalPythonLauncher Local = new();

    // The launch names the pack by its folder, which is where a remote host keeps the pack and its wheels (a pack's
    // folder may differ from its ref: stackstorm-aws holds the pack aws).
    internal static string PackFolder(string packDirectory) => Path.GetFileName(Path.TrimEndingDirectorySeparator(packDirectory));

    private static RunnerResult Result(PythonOutcome outcome, TimeSpan timeout)
    {
        var final = outcome.Final;
        var returned = final?["t"]?.GetValue<string>() == "result";
        var result = new JsonObject
        {
            // StackStorm's runner writes the text "None" when the action wrote no result (it raised, exited, timed out).
            ["result"] = returned ? final!["result"]?.DeepClone() : "None",
            ["stdout"] = outcome.Stdout,
            ["stderr"] = outcome.Stderr,
            ["exit_code"] = outcome.ExitCode,
        };

        if (outcome.TimedOut)
        {
            return new RunnerResult(ExecutionStatus.Timeout, result, $"Action failed to complete in {timeout.TotalSeconds:0.###} seconds");
        }

        if (final?["t"]?.GetValue<string>() == "error")
        {
            return RunnerResult.Failed(result, final["error"]?.GetValue<string>() ?? "the action could not be loaded");
        }

        if (outcome.ExitCode != 0)
        {
            return RunnerResult.Failed(result, outcome.ExitCode == 1 && LastLine(outcome.Stderr) is { } raised
                ? $"the action raised {raised}"
                : $"the action exited with code {outcome.ExitCode}");
        }

        if (!returned)
        {
            return RunnerResult.Succeeded(result);
        }

        return final!["status"] is JsonValue status && status.TryGetValue<bool>(out var succeeded) && !succeeded
            ? RunnerResult.Failed(result, "the action returned (False, result)")
            : RunnerResult.Succeeded(result);
    }

    // A traceback ends with the exception's type and message.
    private static string? LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();

    private async Task<JsonNode?> DatastoreAsync(string pack, JsonObject message, CancellationToken cancellationToken)
    {
        if (keys is null)
        {
            throw new KeyValueException("this host has no datastore");
        }

        var className = message["class"]?.GetValue<string>() ?? throw new KeyValueException("the call names no action class");
        return await new PluginDatastore(keys, pack, className).HandleAsync(ToCall(message), cancellationToken);
    }

    /// <summary>A datastore call as the Python services send it.</summary>
    internal static DatastoreCall ToCall(JsonObject message)
    {
        if (message["op"]?.GetValue<string>() != "datastore" || message["call"] is not JsonObject call)
        {
            throw new KeyValueException($"'{message["op"]}' is not a call this runner answers");
        }

        static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        static bool Flag(JsonNode? node, bool otherwise) => node is JsonValue v && v.TryGetValue<bool>(out var b) ? b : otherwise;
        return new DatastoreCall(
            Text(call["operation"]) ?? "",
            Text(call["name"]),
            Text(call["value"]),
            Flag(call["local"], true),
            Text(call["scope"]) ?? "system",
            Flag(call["decrypt"], false),
            Flag(call["encrypt"], false),
            call["ttl"] is JsonValue ttl && ttl.TryGetValue<int>(out var seconds) ? seconds : null,
            Text(call["prefix"]));
    }
}

/// <summary>The host's Python interpreter for every pack (packs without virtualenvs of their own).</summary>
public sealed class HostPythonEnvironments(Microsoft.Extensions.Options.IOptions<PythonOptions> options) : IPythonEnvironments
{
    public string InterpreterFor(PackDefinition pack) => HostPython.Resolve(options.Value);
}
