using System.Diagnostics;
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

        start.Environment.Clear();
        start.Environment["PATH"] = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin";
        start.Environment["HOME"] = Environment.GetEnvironmentVariable("HOME") ?? "/tmp";
        start.Environment["LANG"] = "C.UTF-8";
        start.Environment["ST2_ACTION_EXECUTION_ID"] = context.ExecutionId;
        if (parameters["env"] is JsonObject env)
        {
            foreach (var (name, value) in env)
            {
                start.Environment[name] = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : value?.ToJsonString() ?? "";
            }
        }

        using var process = new Process { StartInfo = start };
        process.Start();
        process.StandardInput.Close();
        var stdout = ReadBoundedAsync(process.StandardOutput, text => context.Output?.Invoke("stdout", text));
        var stderr = ReadBoundedAsync(process.StandardError, text => context.Output?.Invoke("stderr", text));

        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            timedOut = true;
        }

        var exitCode = timedOut ? -9 : process.ExitCode;
        var result = new JsonObject
        {
            ["stdout"] = StripTrailingNewlines(await stdout),
            ["stderr"] = StripTrailingNewlines(await stderr),
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

    private static async Task<string> ReadBoundedAsync(StreamReader reader, Action<string> live)
    {
        var kept = new StringBuilder();
        var dropped = 0L;
        var buffer = new char[8192];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            live(new string(buffer, 0, read));
            var room = Math.Max(0, OutputLimit - kept.Length);
            kept.Append(buffer, 0, Math.Min(room, read));
            dropped += Math.Max(0, read - room);
        }

        return dropped > 0 ? kept.Append($"\n[… {dropped} more characters cut by ServerlessStorm]").ToString() : kept.ToString();
    }

    // StackStorm strips the trailing newline the shell leaves on output.
    private static string StripTrailingNewlines(string text) => text.TrimEnd('\r', '\n');
}
