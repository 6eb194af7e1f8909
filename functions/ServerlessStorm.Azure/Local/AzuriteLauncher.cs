using System.Diagnostics;
using System.Net.Sockets;

namespace ServerlessStorm.Azure.Local;

/// <summary>Azurite could not be found or started; the message says what to do.</summary>
public sealed class AzuriteUnavailableException(string message) : Exception(message);

/// <summary>
/// Finds Azurite listening on its ports, or starts it from the repository's npm install (node_modules/azurite) and
/// stops it again when disposed. An Azurite that was already running is used and left running.
/// </summary>
public sealed class AzuriteLauncher : IAsyncDisposable
{
    private readonly Process? _process;

    private AzuriteLauncher(AzuriteEndpoints endpoints, Process? process)
    {
        Endpoints = endpoints;
        _process = process;
    }

    public AzuriteEndpoints Endpoints { get; }

    /// <summary>True when this launcher started Azurite (and so stops it).</summary>
    public bool StartedHere => _process is not null;

    public static async Task<AzuriteLauncher> EnsureRunningAsync(AzuriteEndpoints endpoints, string dataDirectory, TimeSpan? startTimeout = null, CancellationToken cancellationToken = default, bool inMemory = false, IEnumerable<string>? arguments = null)
    {
        var listening = await Task.WhenAll(endpoints.Ports.Select(p => IsListeningAsync(endpoints.Host, p, cancellationToken)));
        if (listening.All(l => l))
        {
            return new AzuriteLauncher(endpoints, null);
        }

        if (listening.Any(l => l))
        {
            throw new AzuriteUnavailableException(
                $"only some of Azurite's ports ({string.Join(", ", endpoints.Ports)}) are in use on {endpoints.Host}; stop what holds them or use other ports");
        }

        var script = FindAzuriteScript()
            ?? throw new AzuriteUnavailableException("Azurite is not installed: run 'npm ci' in the repository root (it installs Azurite from package.json)");
        Directory.CreateDirectory(dataDirectory);
        // In a session of its own (setsid, where there is one), so a terminal's Ctrl+C, which signals the whole
        // foreground process group, stops storm serve and not the storage it still has to write to: it is stopped last.
        var setsid = OperatingSystem.IsWindows() ? null : new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists);
        var start = new ProcessStartInfo(setsid ?? "node")
        {
            ArgumentList =
            {
                script, "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose",
                "--blobHost", endpoints.Host, "--blobPort", endpoints.BlobPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--queueHost", endpoints.Host, "--queuePort", endpoints.QueuePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--tableHost", endpoints.Host, "--tablePort", endpoints.TablePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (setsid is not null)
        {
            start.ArgumentList.Insert(0, "node");
        }

        // In memory, nothing is written to disk: its periodic save of the whole store, which grows with the data, is gone.
        start.ArgumentList.Add(inMemory ? "--inMemoryPersistence" : "--location");
        if (!inMemory)
        {
            start.ArgumentList.Add(dataDirectory);
        }

        foreach (var argument in arguments ?? [])
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new AzuriteUnavailableException("could not start node");
        // What it says before it is up (an address in use, a bad argument): its errors go to either stream.
        var stderr = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (stderr) { stderr.AppendLine(e.Data); } };
        process.OutputDataReceived += (_, e) => { lock (stderr) { stderr.AppendLine(e.Data); } };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();

        var deadline = DateTime.UtcNow + (startTimeout ?? TimeSpan.FromSeconds(30));
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new AzuriteUnavailableException($"Azurite exited with code {process.ExitCode}: {stderr}");
            }

            var ready = await Task.WhenAll(endpoints.Ports.Select(p => IsListeningAsync(endpoints.Host, p, cancellationToken)));
            if (ready.All(r => r))
            {
                return new AzuriteLauncher(endpoints, process);
            }

            await Task.Delay(100, cancellationToken);
        }

        process.Kill(entireProcessTree: true);
        throw new AzuriteUnavailableException($"Azurite did not open its ports within the start timeout: {stderr}");
    }

    /// <summary>node_modules/azurite's entry script, looked up from the working folder and the program's folder upwards.</summary>
    public static string? FindAzuriteScript()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var script = Path.Combine(dir.FullName, "node_modules", "azurite", "dist", "src", "azurite.js");
                if (File.Exists(script))
                {
                    return script;
                }
            }
        }

        return null;
    }

    public static async Task<bool> IsListeningAsync(string host, int port, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(host, port, timeout.Token);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return false;
        }
    }

    /// <summary>
    /// Stops the Azurite this launcher started as Ctrl+C would (SIGTERM: it finishes what it was writing), killing
    /// it only if it has not gone within 5 seconds.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            if (!OperatingSystem.IsWindows())
            {
                try
                {
                    using var term = Process.Start(new ProcessStartInfo("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false });
                    term?.WaitForExit(2000);
                }
                catch (System.ComponentModel.Win32Exception)
                {
                    // No kill command: it is killed below.
                }
            }

            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }

        _process?.Dispose();
    }
}
