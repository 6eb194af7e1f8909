using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Deployment.Tests;

/// <summary>The Bicep CLI from its NuGet package, run on infra/main.bicep; the compiled ARM JSON is built once per run.</summary>
public static class Bicep
{
    public static string MainFile => Path.Combine(RepositoryPaths.Root, "infra", "main.bicep");

    private static readonly Lazy<Task<JsonObject>> Compiled = new(async () =>
    {
        var result = await RunAsync("build", MainFile, "--stdout");
        if (result.ExitCode != 0 || result.Stderr.Trim().Length > 0)
        {
            throw new InvalidOperationException($"bicep build failed ({result.ExitCode}):\n{result.Stderr}");
        }

        return JsonNode.Parse(result.Stdout)!.AsObject();
    });

    /// <summary>infra/main.bicep compiled to an ARM template.</summary>
    public static Task<JsonObject> TemplateAsync() => Compiled.Value;

    public static string ExecutablePath
    {
        get
        {
            var path = typeof(Bicep).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "BicepPath").Value!
                .Replace('\\', Path.DirectorySeparatorChar);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"the Bicep CLI is not where its package put it: {path}");
            }

            // A package extracted without its file modes leaves the executable unexecutable.
            if (!OperatingSystem.IsWindows() && !File.GetUnixFileMode(path).HasFlag(UnixFileMode.UserExecute))
            {
                File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute);
            }

            return path;
        }
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo(ExecutablePath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // Offline: no module registry, no telemetry, no version check.
            Environment = { ["BICEP_TELEMETRY_ENABLED"] = "false", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" },
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
