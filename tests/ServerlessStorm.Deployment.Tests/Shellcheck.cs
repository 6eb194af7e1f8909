using System.Diagnostics;

namespace ServerlessStorm.Deployment.Tests;

/// <summary>
/// shellcheck, Debian's package. A machine without it gets it installed once, by apt-get, when the tests run as
/// root (CI, a fresh container); elsewhere the test fails saying how to install it.
/// </summary>
public static class Shellcheck
{
    private static readonly Lazy<string> Executable = new(Find, LazyThreadSafetyMode.ExecutionAndPublication);

    public static (int ExitCode, string Output) Run(params string[] arguments) => Exec(Executable.Value, arguments);

    private static string Find()
    {
        if (OnPath("shellcheck") is { } found)
        {
            return found;
        }

        if (OnPath("apt-get") is { } apt && Environment.UserName == "root")
        {
            var update = Exec(apt, ["update", "-qq"]);
            var install = Exec(apt, ["install", "-y", "-qq", "--no-install-recommends", "shellcheck"]);
            if (OnPath("shellcheck") is { } installed)
            {
                return installed;
            }

            throw new InvalidOperationException($"installing shellcheck with apt-get failed:\n{update.Output}\n{install.Output}");
        }

        throw new InvalidOperationException("shellcheck is not installed: on Debian or Ubuntu, `sudo apt-get install shellcheck`");
    }

    private static string? OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    private static (int ExitCode, string Output) Exec(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish in 5 minutes");
        }

        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
