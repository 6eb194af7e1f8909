using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// Runs one local program for the shell runners: a clean environment (PATH, HOME, LANG and the action's <c>env</c>,
/// never the host's secrets or connection strings), a timeout that kills the whole process tree, and stdout and
/// stderr captured up to a limit with a visible marker. The result has StackStorm's shape.
/// </summary>
/// <remarks>
/// The program runs in a session of its own (as StackStorm's local runner does with setsid), so that a timeout or a
/// cancellation kills everything it started, including what it put in the background or detached from its parent.
/// The timeout covers the program's output too: a background process that keeps stdout open keeps the action
/// running, as it holds output the action may still write, until the timeout kills it. What an action leaves running
/// with its output redirected elsewhere (a daemon) is not waited for, nor killed when the action ends.
/// </remarks>
internal static class LocalProcess
{
    public const int DefaultTimeoutSeconds = 60;

    /// <summary>Each of stdout and stderr keeps at most this many characters; the rest is cut with a marker.</summary>
    public const int OutputLimit = 1024 * 1024;

    /// <summary>The parameters every local runner has.</summary>
    public static IEnumerable<ParameterDefinition> CommonParameters =>
    [
        ParameterReader.Define("cwd", "string", description: "Working directory (the system temp folder when not given)."),
        ParameterReader.Define("env", "object", description: "Environment variables; nothing else is inherited but PATH, HOME and LANG."),
        ParameterReader.Define("timeout", "integer", defaultValue: DefaultTimeoutSeconds, description: "Seconds before the process and everything it started are killed."),
        ParameterReader.Define("sudo", "boolean", defaultValue: false, description: "Not supported: actions never run as another user."),
    ];

    public static async Task<RunnerResult> RunAsync(string program, IEnumerable<string> arguments, RunnerContext context, CancellationToken cancellationToken)
    {
        var parameters = context.Parameters;
        if (parameters["sudo"] is JsonValue sudo && sudo.TryGetValue<bool>(out var asRoot) && asRoot)
        {
            return RunnerResult.Failed([], "sudo is not supported: actions run as the host's service user");
        }

        var cwd = ParameterReader.String(parameters, "cwd") ?? Path.GetTempPath();
        if (!Directory.Exists(cwd))
        {
            return RunnerResult.Failed([], $"working directory '{cwd}' does not exist");
        }

        var timeout = TimeSpan.FromSeconds(ParameterReader.Number(parameters, "timeout") ?? DefaultTimeoutSeconds);
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = cwd,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        CleanEnvironment(start);
        start.Environment["ST2_ACTION_EXECUTION_ID"] = context.ExecutionId;
        AddEnvParameter(start, parameters);

        using var session = SessionProcess.Start(start);
        var process = session.Process;
        process.StandardInput.Close();
        var stdout = new BoundedOutput(text => context.Output?.Invoke("stdout", text));
        var stderr = new BoundedOutput(text => context.Output?.Invoke("stderr", text));
        var reading = Task.WhenAll(stdout.ReadAsync(process.StandardOutput), stderr.ReadAsync(process.StandardError));

        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        var timedOut = false;
        try
        {
            await Task.WhenAll(process.WaitForExitAsync(timeoutSource.Token), reading).WaitAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException)
        {
            session.KillTree();
            await process.WaitForExitAsync(CancellationToken.None);

            // Killing the session closes the output; a process that left it (a setsid of its own) may still hold it.
            await reading.WaitAsync(OutputGrace, CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default);
            cancellationToken.ThrowIfCancellationRequested();
            timedOut = true;
        }

        var exitCode = timedOut ? -9 : process.ExitCode;
        var result = new JsonObject
        {
            ["stdout"] = StripTrailingNewlines(stdout.Text()),
            ["stderr"] = StripTrailingNewlines(stderr.Text()),
            ["return_code"] = exitCode,
            ["succeeded"] = exitCode == 0,
            ["failed"] = exitCode != 0,
        };

        if (timedOut)
        {
            return new RunnerResult(ExecutionStatus.Timeout, result, $"the command did not finish within {timeout.TotalSeconds:0.###} s and was killed");
        }

        return exitCode == 0 ? RunnerResult.Succeeded(result) : RunnerResult.Failed(result, $"the command exited with code {exitCode}");
    }

    // How long output may stay open after a timeout's kill before what was read so far is the result.
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(2);

    /// <summary>Only PATH, HOME and LANG of the host's environment: never its secrets or connection strings.</summary>
    public static void CleanEnvironment(ProcessStartInfo start)
    {
        start.Environment.Clear();
        start.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        start.Environment["HOME"] = Environment.GetEnvironmentVariable("HOME") ?? "/tmp";
        start.Environment["LANG"] = "C.UTF-8";
    }

    /// <summary>The runners' <c>env</c> parameter: strings as they are, anything else as JSON.</summary>
    public static void AddEnvParameter(ProcessStartInfo start, JsonObject parameters)
    {
        if (parameters["env"] is JsonObject env)
        {
            foreach (var (name, value) in env)
            {
                start.Environment[name] = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "";
            }
        }
    }

    // StackStorm strips the trailing newline the shell leaves on output.
    private static string StripTrailingNewlines(string text) => text.TrimEnd('\r', '\n');
}

/// <summary>One output stream, kept up to <see cref="LocalProcess.OutputLimit"/> and passed on live as it comes.</summary>
internal sealed class BoundedOutput(Action<string> live)
{
    private readonly StringBuilder _kept = new();
    private long _dropped;

    public async Task ReadAsync(StreamReader reader)
    {
        var buffer = new char[8192];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            Add(new string(buffer, 0, read));
        }
    }

    public void Add(string text)
    {
        live(text);
        lock (_kept)
        {
            var room = Math.Max(0, LocalProcess.OutputLimit - _kept.Length);
            _kept.Append(text, 0, Math.Min(room, text.Length));
            _dropped += Math.Max(0, text.Length - room);
        }
    }

    /// <summary>What was read so far, with the marker when some was cut.</summary>
    public string Text()
    {
        lock (_kept)
        {
            return _dropped > 0 ? $"{_kept}\n[… {_dropped} more characters cut by ServerlessStorm]" : _kept.ToString();
        }
    }
}

/// <summary>
/// A program started in a session and process group of its own (setsid), so that everything it starts, even what
/// it put in the background, is killed with it. The one way the runners start local programs.
/// </summary>
internal sealed class SessionProcess : IDisposable
{
    private const string SetsidPath = "/usr/bin/setsid";
    private readonly bool _ownSession;

    private SessionProcess(Process process, bool ownSession)
    {
        Process = process;
        _ownSession = ownSession;
    }

    public Process Process { get; }

    public static SessionProcess Start(ProcessStartInfo start)
    {
        var ownSession = InOwnSession(start);
        var process = new Process { StartInfo = start };
        process.Start();
        return new SessionProcess(process, ownSession);
    }

    /// <summary>Kills the program and everything in its session (by group id, also after the program itself exited).</summary>
    public void KillTree()
    {
        const int SigKill = 9;
        if (_ownSession)
        {
            Kill(-Process.Id, SigKill);
        }

        try
        {
            Process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    public void Dispose() => Process.Dispose();

    // setsid makes the program the leader of a new session and process group (whose id is its pid) and then
    // becomes it (exec, same pid): .NET starts children outside its own group's lead, so setsid need not fork.
    private static bool InOwnSession(ProcessStartInfo start)
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(SetsidPath))
        {
            return false;
        }

        start.ArgumentList.Insert(0, start.FileName);
        start.FileName = SetsidPath;
        return true;
    }

    // The group outlives its leader while a member lives, and its id is not given to a new process meanwhile, so
    // it is killed by id even after the program itself has exited (its background children holding the output).
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
