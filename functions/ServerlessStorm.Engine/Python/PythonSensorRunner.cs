using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Sensors;

namespace ServerlessStorm.Engine.Python;

/// <summary>
/// StackStorm's Python sensors (a <c>.py</c> entry_point in the pack's <c>sensors/</c> folder): a
/// <c>PollingSensor</c> is polled in a short process of its own per poll, a <c>Sensor</c> runs its <c>run()</c> in a
/// long-running one.
/// </summary>
/// <remarks>
/// <para>
/// A poll is what a freshly started StackStorm sensor does, then one poll: the class is made with
/// <c>(sensor_service, config, poll_interval)</c>, <c>setup()</c>, <c>add_trigger()</c> for each current trigger, the
/// kept state restored, <c>poll()</c>, <c>cleanup()</c>, and the new state handed back to be kept.
/// </para>
/// <para>
/// The kept state is how a sensor that remembers things in its attributes (<c>self._last_id</c>) keeps working
/// although its process is new on every poll. The rule: an instance attribute is state once a poll has changed its
/// value from the one it had right after construction, <c>setup()</c> and <c>add_trigger()</c>; from then on it is kept
/// after every poll, and set again before the next poll (after setup(), so it wins over setup's fresh value). Only
/// values that come back equal from JSON are kept (a datetime, a client, a set, a tuple or a dict with int keys is
/// left out, with a warning in the sensor's log: keep such things as strings or numbers, or in the datastore); the base classes' attributes (<c>sensor_service</c>, <c>config</c>, the poll interval) never
/// are. An attribute no poll changes (a client made in setup(), a value read from the config) is not state, so a config
/// change reaches the next poll. When a poll fails, the state it started with is handed back unchanged.
/// </para>
/// <para>
/// Dispatches go to <see cref="ISensorHost.DispatchAsync"/>; one the trigger type refuses is logged with its reason and
/// <c>dispatch()</c> returns None, as in StackStorm, so the sensor goes on. One that fails for another reason (the bus,
/// the audit store) raises in the sensor, so the poll fails and its state is not kept: the next poll tries again.
/// Its logger's records and its stdout and stderr lines go to <see cref="ISensorHost.Log"/>.
/// </para>
/// </remarks>
public sealed class PythonSensorRunner(IPythonEnvironments environments, ILogger? logger = null, IPythonLauncher? launcher = null) : ISensorRunner
{
    /// <summary>A poll gets at least this long (or its poll interval, when longer) before it is killed.</summary>
    public static readonly TimeSpan MinimumPollTimeout = TimeSpan.FromSeconds(60);

    private readonly ILogger _logger = logger ?? NullLogger.Instance;

    private IPythonLauncher Launcher { get; } = launcher ?? new LocalPythonLauncher();

    public bool Runs(SensorDefinition sensor) => sensor.EntryPoint?.EndsWith(".py", StringComparison.OrdinalIgnoreCase) == true;

    public async Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
    {
        if (Prepare(run, "poll", out var interpreter, out var job) is { } problem)
        {
            return new SensorPollOutcome(run.State, problem);
        }

        var timeout = run.Sensor.PollInterval > MinimumPollTimeout ? run.Sensor.PollInterval : MinimumPollTimeout;
        PythonOutcome outcome;
        try
        {
            outcome = await Run(run, host, interpreter, job, timeout, CancellationToken.None, cancellationToken);
        }
        catch (PythonEnvironmentException ex)
        {
            return new SensorPollOutcome(run.State, ex.Message);
        }

        if (outcome.TimedOut)
        {
            return new SensorPollOutcome(run.State, $"the poll did not finish within {timeout.TotalSeconds:0.###} s and was killed");
        }

        return outcome.Final switch
        {
            { } done when Kind(done) == "done" && done["long_running"] is JsonValue v && v.TryGetValue<bool>(out var longRunning) && longRunning =>
                new SensorPollOutcome(run.State) { LongRunning = true },
            { } done when Kind(done) == "done" && outcome.ExitCode == 0 =>
                new SensorPollOutcome(done["state"] as JsonObject is { } state ? (JsonObject)state.DeepClone() : []) { PollInterval = Interval(done["poll_interval"]) },
            { } error when Kind(error) == "error" => new SensorPollOutcome(run.State, error["error"]?.GetValue<string>() ?? "the poll failed"),
            _ => new SensorPollOutcome(run.State, Ended(outcome)),
        };
    }

    public async Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken)
    {
        if (Prepare(run, "run", out var interpreter, out var job) is { } problem)
        {
            return problem;
        }

        try
        {
            var outcome = await Run(run, host, interpreter, job, Timeout.InfiniteTimeSpan, cancellationToken, CancellationToken.None);
            return outcome.Final is { } error && Kind(error) == "error" ? error["error"]?.GetValue<string>() ?? "the sensor failed"
                : cancellationToken.IsCancellationRequested || outcome.ExitCode == 0 ? null
                : Ended(outcome);
        }
        catch (PythonEnvironmentException ex)
        {
            return ex.Message;
        }
    }

    private static string? Kind(JsonObject message) => message["t"]?.GetValue<string>();

    // What get_poll_interval() returned, in seconds; anything else is the YAML's.
    private static TimeSpan? Interval(JsonNode? seconds) =>
        seconds is JsonValue value && value.TryGetValue<double>(out var s) && double.IsFinite(s) && s > 0 ? TimeSpan.FromSeconds(Math.Min(s, 86_400)) : null;

    private static string Ended(PythonOutcome outcome)
    {
        var lastLine = outcome.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        return $"the sensor's process exited with code {outcome.ExitCode}" + (lastLine is null ? "" : $": {lastLine}");
    }

    private string? Prepare(SensorRun run, string operation, out string? interpreter, out JsonObject job)
    {
        interpreter = "";
        job = [];
        var sensors = Path.GetFullPath(Path.Combine(run.Pack.Directory, "sensors"));
        var file = Path.GetFullPath(Path.Combine(sensors, run.Sensor.EntryPoint ?? ""));
        if (!file.StartsWith(sensors + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            return $"{run.Sensor.SourceFile}: entry_point '{run.Sensor.EntryPoint}' is outside the pack's sensors folder";
        }

        if (!File.Exists(file))
        {
            return $"{run.Sensor.SourceFile}: entry_point '{run.Sensor.EntryPoint}' does not exist in {sensors}";
        }

        try
        {
            interpreter = Launcher.ChoosesInterpreter ? environments.InterpreterFor(run.Pack) : null;
        }
        catch (PythonEnvironmentException ex)
        {
            return ex.Message;
        }

        var triggers = new JsonArray();
        foreach (var trigger in run.Triggers)
        {
            // StackStorm hands add_trigger the trigger as its API shows it.
            var dot = trigger.Ref.IndexOf('.', StringComparison.Ordinal);
            triggers.Add(new JsonObject
            {
                ["ref"] = trigger.Ref,
                ["uid"] = $"trigger:{trigger.Ref.Replace('.', ':')}",
                ["pack"] = dot < 0 ? run.Sensor.Pack : trigger.Ref[..dot],
                ["name"] = dot < 0 ? trigger.Ref : trigger.Ref[(dot + 1)..],
                ["type"] = trigger.Type,
                ["parameters"] = trigger.Parameters.DeepClone(),
            });
        }

        job = new JsonObject
        {
            ["mode"] = "sensor",
            ["operation"] = operation,
            ["file"] = file,
            ["class_name"] = run.Sensor.ClassName,
            ["config"] = run.Pack.Config.DeepClone(),
            // Given to the constructor only when declared, so a sensor without one keeps its class's default.
            ["poll_interval"] = run.Sensor.PollIntervalDeclared ? run.Sensor.PollInterval.TotalSeconds : null,
            ["triggers"] = triggers,
            ["state"] = run.State.DeepClone(),
        };
        return null;
    }

    private async Task<PythonOutcome> Run(SensorRun run, ISensorHost host, string? interpreter, JsonObject job, TimeSpan timeout,
        CancellationToken stop, CancellationToken cancellationToken)
    {
        var lines = new Dictionary<string, StringBuilder>(StringComparer.Ordinal) { ["stdout"] = new(), ["stderr"] = new() };
        void Output(string stream, string text)
        {
            // Whole lines to the log; a partial one waits for its end (or the end of the run).
            lock (lines)
            {
                var pending = lines[stream].Append(text);
                var all = pending.ToString();
                var end = all.LastIndexOf('\n');
                if (end < 0)
                {
                    return;
                }

                pending.Clear().Append(all[(end + 1)..]);
                foreach (var line in all[..end].Split('\n'))
                {
                    host.Log(stream == "stderr" ? "warning" : "info", line.TrimEnd('\r'));
                }
            }
        }

        var callbacks = new PythonCallbacks
        {
            Output = Output,
            Log = (level, message) => host.Log(level.ToLowerInvariant(), message),
            Call = (call, token) => CallAsync(run, host, call, token),
        };
        var environment = new Dictionary<string, string>(StringComparer.Ordinal) { ["ST2_SENSOR_PACK_NAME"] = run.Sensor.Pack };
        // The pack's common libraries (lib/) on the module path, as StackStorm's sensor container puts them.
        PythonHostProcess.SetPackPaths(job, environment, run.Pack.Directory, job["file"]!.GetValue<string>(), Path.Combine(Path.GetFullPath(run.Pack.Directory), "lib"));
        try
        {
            var launch = new PythonLaunch(Guid.NewGuid().ToString("N"), PythonScriptRunner.PackFolder(Path.GetFullPath(run.Pack.Directory)), [], environment, null,
                timeout == Timeout.InfiniteTimeSpan ? TimeSpan.MaxValue : timeout + PythonHostProcess.KillGrace) { Interpreter = interpreter };
            return await PythonHostProcess.RunAsync(Launcher, launch, job, timeout, callbacks, _logger, cancellationToken, stop);
        }
        finally
        {
            lock (lines)
            {
                foreach (var (stream, pending) in lines.Where(l => l.Value.Length > 0))
                {
                    host.Log(stream == "stderr" ? "warning" : "info", pending.ToString());
                }
            }
        }
    }

    private async Task<JsonNode?> CallAsync(SensorRun run, ISensorHost host, JsonObject message, CancellationToken cancellationToken)
    {
        if (message["op"]?.GetValue<string>() != "dispatch")
        {
            return await host.DatastoreAsync(PythonScriptRunner.ToCall(message), cancellationToken);
        }

        var trigger = message["trigger"] is JsonValue t && t.TryGetValue<string>(out var name) ? name : "";
        try
        {
            await host.DispatchAsync(trigger, message["payload"]?.DeepClone(), message["trace_tag"] is JsonValue tag && tag.TryGetValue<string>(out var traceTag) ? traceTag : null, cancellationToken);
            return null;
        }
        catch (SensorDispatchException ex)
        {
            // StackStorm logs a refused payload in the sensor's log and drops it; the sensor goes on.
            _logger.PythonSensorDispatchRefused(run.Sensor.Ref, trigger, ex.Message);
            host.Log("warning", $"dispatch of trigger \"{trigger}\" refused: {ex.Message}");
            throw new PythonCallRefusedException(ex.Message);
        }
    }
}
