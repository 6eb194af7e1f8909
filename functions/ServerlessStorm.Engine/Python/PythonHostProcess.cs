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

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <param name="stop">For a long-running sensor: asks the program to stop (cleanup() and exit) rather than killing it.</param>
    public static async Task<PythonOutcome> RunAsync(string interpreter, JsonObject job, IReadOnlyDictionary<string, string> environment,
        TimeSpan timeout, PythonCallbacks callbacks, ILogger logger, CancellationToken cancellationToken, CancellationToken stop = default)
    {
        if (!File.Exists(ProgramPath))
        {
            throw new PythonEnvironmentException($"the Python host program is missing from the installation ({ProgramPath})");
        }

        var start = new ProcessStartInfo(interpreter)
        {
            WorkingDirectory = Path.GetTempPath(),
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = Utf8,
            StandardOutputEncoding = Utf8,
            StandardErrorEncoding = Utf8,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-u");
        start.ArgumentList.Add(ProgramPath);
        LocalProcess.CleanEnvironment(start);
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var mode = job["mode"]?.GetValue<string>() ?? "action";
        var file = job["file"]?.GetValue<string>() ?? "";
        SessionProcess session;
        try
        {
            session = SessionProcess.Start(start);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new PythonEnvironmentException($"the Python interpreter '{interpreter}' cannot be started: {ex.Message}");
        }

        using var owned = session;
        var process = session.Process;
        logger.PythonProcessStarted(mode, file, process.Id, interpreter);
        var stdout = new BoundedOutput(text => callbacks.Output?.Invoke("stdout", text));
        var stderr = new BoundedOutput(text => callbacks.Output?.Invoke("stderr", text));
        var channel = new Channel(process.StandardInput);
        await channel.SendAsync(job, CancellationToken.None);

        using var calls = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        JsonObject? final = null;
        var reading = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                JsonObject message;
                try
                {
                    message = JsonNode.Parse(line) as JsonObject ?? throw new JsonException("not an object");
                }
                catch (JsonException ex)
                {
                    logger.PythonProtocolError(mode, file, ex.Message);
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
        // What the interpreter itself writes before the program captures its stderr (a missing module, a crash).
        var early = Task.Run(() => stderr.ReadAsync(process.StandardError), CancellationToken.None);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            deadline.CancelAfter(timeout);
        }

        var timedOut = false;
        await using (stop.Register(() => _ = channel.SendAsync(new JsonObject { ["t"] = "stop" }, CancellationToken.None)))
        {
            try
            {
                var ended = Task.WhenAll(process.WaitForExitAsync(CancellationToken.None), reading, early);
                if (stop.CanBeCanceled)
                {
                    // A stopped sensor gets its grace period to clean up, then everything it runs is killed.
                    using var graceful = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                    await using var graceRegistration = stop.Register(() => graceful.CancelAfter(StopGrace));
                    await ended.WaitAsync(graceful.Token);
                }
                else
                {
                    await ended.WaitAsync(deadline.Token);
                }
            }
            catch (OperationCanceledException)
            {
                var reason = cancellationToken.IsCancellationRequested ? "canceled" : stop.IsCancellationRequested ? "did not stop in time" : "timed out";
                logger.PythonProcessKilled(mode, file, process.Id, reason);
                session.KillTree();
                await process.WaitForExitAsync(CancellationToken.None);
                await Task.WhenAll(reading, early).WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
                cancellationToken.ThrowIfCancellationRequested();
                timedOut = !stop.IsCancellationRequested;
            }
        }

        calls.Cancel();
        return new PythonOutcome(timedOut ? -9 : process.ExitCode, timedOut, final, stdout.Text(), stderr.Text());
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
        }

        await channel.SendAsync(answer, CancellationToken.None);
    }

    /// <summary>The program's stdin: JSON lines, one writer at a time; a program that has gone is not written to.</summary>
    private sealed class Channel(StreamWriter input)
    {
        private readonly SemaphoreSlim _gate = new(1, 1);

        public async Task SendAsync(JsonObject message, CancellationToken cancellationToken)
        {
            await _gate.WaitAsync(cancellationToken);
            try
            {
                await input.WriteAsync(message.ToJsonString() + "\n");
                await input.FlushAsync(cancellationToken);
            }
            catch (IOException)
            {
                // the program has exited
            }
            catch (ObjectDisposedException)
            {
                // the run is over
            }
            finally
            {
                _gate.Release();
            }
        }
    }
}
