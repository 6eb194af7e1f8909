using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Diagnostics;

namespace ServerlessStorm.Engine.Python;

/// <summary>What one run of the Python host program ended with.</summary>
/// <param name="Final">Its last outcome message (<c>result</c>, <c>done</c> or <c>error</c>); null when it sent none.</param>
internal sealed record PythonOutcome(int ExitCode, bool TimedOut, JsonObject? Final, string Stdout, string Stderr);

/// <summary>
/// Thrown by a <see cref="PythonCallbacks.Call"/> that refuses what was asked (a payload its trigger type rejects), as
/// opposed to failing: the Python side drops a refused dispatch and goes on, but raises on a failed one.
/// </summary>
internal sealed class PythonCallRefusedException(string message) : Exception(message);

/// <summary>What a run of the Python host program calls back.</summary>
internal sealed class PythonCallbacks
{
    /// <summary>Output of the pack code (stream, text), as it comes.</summary>
    public Action<string, string>? Output { get; init; }

    /// <summary>A datastore call or a dispatch; its answer, or an exception whose message the code gets as the refusal.</summary>
    public required Func<JsonObject, CancellationToken, Task<JsonNode?>> Call { get; init; }

    /// <summary>A log record of the pack code's logger (level, text).</summary>
    public Action<string, string>? Log { get; init; }
}

/// <summary>
/// Runs <c>storm_python_host.py</c> (shipped in <c>python/</c> beside the engine) for one action execution, sensor
/// poll or long-running sensor: a fresh process per run, as StackStorm starts one per execution, in a session of its
/// own so a timeout, a cancel or a stop kills everything it started.
/// </summary>
/// <remarks>
/// The protocol: the job goes as one JSON line on the program's stdin, then answers to its calls; the program's stdout
/// carries only JSON lines (output chunks, calls, log lines, the outcome), because it moves the pack code's own
/// stdout and stderr onto pipes it forwards. So the pack code's output stays exactly what it printed.
/// </remarks>
internal static class PythonHostProcess
{
    public static string ProgramPath => Path.Combine(AppContext.BaseDirectory, "python", "storm_python_host.py");

    // How long a long-running sensor has to run its cleanup() when stopped before its processes are killed.
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);

    /// <summary>How long past its timeout the host running a launch kills it by itself.</summary>
    public static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(30);

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>The variable that names the packs folder to the host program (where the job's paths are relative to).</summary>
    public const string PacksRootVariable = "STORM_PACKS_ROOT";

    /// <summary>
    /// Puts the module (<c>file</c>) and the pack's library folders (<c>paths</c>, in the order they go on the module
    /// path) in the job relative to the packs folder, and names that folder in the environment: a remote Python host
    /// has its own copy of the packs, and its relay rewrites the variable to it.
    /// </summary>
    public static void SetPackPaths(JsonObject job, IDictionary<string, string> environment, string packDirectory, string file, params string[] libraries)
    {
        var packsRoot = Path.GetDirectoryName(Path.GetFullPath(packDirectory).TrimEnd(Path.DirectorySeparatorChar))!;
        job["file"] = Path.GetRelativePath(packsRoot, file);
        job["paths"] = new JsonArray([.. libraries.Select(l => (JsonNode)Path.GetRelativePath(packsRoot, l))]);
        environment[PacksRootVariable] = packsRoot;
        // The pack's own folder, which may differ from its ref (st2common.content.utils.get_pack_base_path reads it).
        environment["STORM_PACK_FOLDER"] = Path.GetFileName(Path.GetFullPath(packDirectory).TrimEnd(Path.DirectorySeparatorChar));
    }

    /// <param name="stop">For a long-running sensor: asks the program to stop (cleanup() and exit) rather than killing it.</param>
    public static async Task<PythonOutcome> RunAsync(IPythonLauncher launcher, PythonLaunch launch, JsonObject job, TimeSpan timeout,
        PythonCallbacks callbacks, ILogger logger, CancellationToken cancellationToken, CancellationToken stop = default)
    {
        var mode = job["mode"]?.GetValue<string>() ?? "action";
        var file = job["file"]?.GetValue<string>() ?? "";
        await using var process = await launcher.StartAsync(launch with { Environment = CleanEnvironment(launch.Environment) }, cancellationToken);
        logger.PythonProcessStarted(mode, file, launch.Id, launch.Interpreter ?? "the Python host's");
        var stdout = new BoundedOutput(text => callbacks.Output?.Invoke("stdout", text));
        var stderr = new BoundedOutput(text => callbacks.Output?.Invoke("stderr", text));
        var channel = new Channel(process);
        await channel.SendAsync(job);

        using var calls = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        JsonObject? final = null;
        string? unreadable = null;
        var reading = Task.Run(async () =>
        {
            await foreach (var line in process.ReadLinesAsync(CancellationToken.None))
            {
                JsonObject message;
                try
                {
                    message = JsonNode.Parse(line) as JsonObject ?? throw new JsonException("not an object");
                }
                catch (JsonException ex)
                {
                    logger.PythonProtocolError(mode, file, ex.Message);
                    unreadable ??= ex.Message;
                    continue;
                }

                switch (message["t"]?.GetValue<string>())
                {
                    case "out":
                        (message["stream"]?.GetValue<string>() == "stderr" ? stderr : stdout).Add(message["text"]?.GetValue<string>() ?? "");
                        break;
                    case "log":
                        callbacks.Log?.Invoke(message["level"]?.GetValue<string>() ?? "INFO", message["message"]?.GetValue<string>() ?? "");
                        break;
                    case "call":
                        _ = AnswerAsync(channel, message, callbacks, calls.Token);
                        break;
                    default:
                        final = message;
                        break;
                }
            }
        }, CancellationToken.None);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            deadline.CancelAfter(timeout);
        }

        var timedOut = false;
        await using (stop.Register(() => _ = channel.SendAsync(new JsonObject { ["t"] = "stop" })))
        {
            try
            {
                if (stop.CanBeCanceled)
                {
                    // A stopped sensor gets its grace period to clean up, then everything it runs is killed.
                    using var graceful = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                    await using var graceRegistration = stop.Register(() => graceful.CancelAfter(StopGrace));
                    await reading.WaitAsync(graceful.Token);
                }
                else
                {
                    await reading.WaitAsync(deadline.Token);
                }
            }
            catch (OperationCanceledException)
            {
                var reason = cancellationToken.IsCancellationRequested ? "canceled" : stop.IsCancellationRequested ? "did not stop in time" : "timed out";
                logger.PythonProcessKilled(mode, file, launch.Id, reason);
                await process.KillAsync();
                await reading.WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
                cancellationToken.ThrowIfCancellationRequested();
                timedOut = !stop.IsCancellationRequested;
            }
        }

        calls.Cancel();
        if (final is null && unreadable is not null)
        {
            // The outcome may be the line that could not be read: fail rather than report success without a result.
            final = new JsonObject { ["t"] = "error", ["error"] = $"the Python host sent a message that could not be read: {unreadable}" };
        }

        if (process.Diagnostics is { Length: > 0 } early)
        {
            stderr.Add(early);
        }

        return new PythonOutcome(timedOut ? -9 : process.ExitCode ?? -9, timedOut, final, stdout.Text(), stderr.Text());
    }

    // Nothing of the host's environment but PATH, HOME and LANG (never its secrets or connection strings), then the run's own.
    private static Dictionary<string, string> CleanEnvironment(IReadOnlyDictionary<string, string> own)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
            ["HOME"] = Environment.GetEnvironmentVariable("HOME") ?? "/tmp",
            ["LANG"] = "C.UTF-8",
        };
        foreach (var (name, value) in own)
        {
            environment[name] = value;
        }

        return environment;
    }

    private static async Task AnswerAsync(Channel channel, JsonObject call, PythonCallbacks callbacks, CancellationToken cancellationToken)
    {
        var answer = new JsonObject { ["id"] = call["id"]?.DeepClone() };
        try
        {
            var value = await callbacks.Call(call, cancellationToken);
            answer["ok"] = true;
            answer["value"] = value?.DeepClone();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return;
        }
        catch (Exception ex)
        {
            answer["ok"] = false;
            answer["error"] = ex.Message;
            if (ex is PythonCallRefusedException)
            {
                answer["refused"] = true;
            }
        }

        await channel.SendAsync(answer);
    }

    /// <summary>The program's stdin: JSON lines; a program that has gone is not written to.</summary>
    private sealed class Channel(IPythonProcess process)
    {
        public Task SendAsync(JsonObject message) => process.SendAsync(message.ToJsonString(), CancellationToken.None);
    }
}
