using System.Collections.Concurrent;
using System.Diagnostics;

namespace ServerlessStorm.Engine.Python;

/// <summary>The host's Python interpreter, as configured or python3 on PATH.</summary>
public static class HostPython
{
    private static readonly ConcurrentDictionary<string, string> Resolved = new(StringComparer.Ordinal);

    /// <summary>
    /// The real executable of the configured interpreter: asked once for its <c>sys.executable</c>, because a
    /// launcher on PATH (a pyenv shim is a shell script) costs a hundred milliseconds on every start.
    /// </summary>
    public static string Resolve(PythonOptions options)
    {
        var configured = string.IsNullOrWhiteSpace(options.Interpreter) ? "python3" : options.Interpreter;
        return Resolved.GetOrAdd(configured, Ask);
    }

    private static string Ask(string interpreter)
    {
        var start = new ProcessStartInfo(interpreter) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "-c", "import sys; print(sys.executable)" })
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            return process.ExitCode == 0 && output.Length > 0 && File.Exists(output)
                ? output
                : throw new PythonEnvironmentException($"the Python interpreter '{interpreter}' did not run (exit code {process.ExitCode}); set Storm:Python:Interpreter to a Python 3 interpreter");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new PythonEnvironmentException($"no Python interpreter '{interpreter}' ({ex.Message}): install Python 3 or set Storm:Python:Interpreter");
        }
    }
}
