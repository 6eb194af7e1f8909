using System.Diagnostics;
using System.Text;

namespace ServerlessStorm.Testing;

/// <summary>The output of one finished storm command.</summary>
public sealed record CliResult(int ExitCode, string StdOut, string StdErr)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";
}

/// <summary>Runs the built storm executable as a real process, from the repository root.</summary>
public sealed class StormProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private StormProcess(Process process, string url)
    {
        _process = process;
        Url = url;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Url { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public static string StormDll => Path.Combine(AppContext.BaseDirectory, "storm.dll");

    /// <summary>
    /// The credentials file every storm process of this test run shares (never the user's own): each server files its
    /// administrator key there under its address, and CLI commands and <see cref="NewHttpClient"/> find it.
    /// </summary>
    public static string CredentialsPath { get; } = Path.Combine(Path.GetTempPath(), $"storm-e2e-{Environment.ProcessId}", "credentials.json");

    /// <summary>An HTTP client that sends the administrator key filed for whichever local server it calls.</summary>
    public static HttpClient NewHttpClient() => new(new FiledKeyHandler { InnerHandler = new HttpClientHandler() });

    /// <summary>The administrator key this server filed.</summary>
    public string ApiKey => Cli.Client.CredentialsFile.Read(new Uri(Url), CredentialsPath) ?? throw new InvalidOperationException($"no key is filed for {Url} in {CredentialsPath}");

    /// <summary>Starts <c>storm serve</c> on a free port and waits until its API answers.</summary>
    public static Task<StormProcess> ServeAsync(params string[] arguments) => ServeAsync(new Dictionary<string, string>(), arguments);

    /// <summary>Starts <c>storm serve</c> with extra environment variables (configuration such as <c>Storm__AllowedNetworks__0</c>).</summary>
    public static Task<StormProcess> ServeAsync(IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        ServeAsync(environment, ownProcessGroup: false, arguments);

    /// <summary>
    /// Starts <c>storm serve</c> as a terminal starts a foreground program: leading a process group of its own
    /// (through setsid), so <see cref="InterruptGroupAsync"/> can send what Ctrl+C sends.
    /// </summary>
    public static Task<StormProcess> ServeInOwnProcessGroupAsync(IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        ServeAsync(environment, ownProcessGroup: true, arguments);

    private static async Task<StormProcess> ServeAsync(IReadOnlyDictionary<string, string> environment, bool ownProcessGroup, string[] arguments)
    {
        // A test that restarts a server on the same address names the port; otherwise a free one is taken.
        var named = Array.IndexOf(arguments, "--port");
        var port = named >= 0 ? arguments[named + 1] : AzuriteFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var url = $"http://127.0.0.1:{port}";
        var start = StartInfo(named >= 0 ? ["serve", .. arguments] : ["serve", "--port", port, .. arguments], environment);
        if (ownProcessGroup)
        {
            // setsid forks the program into a session (and process group) of its own and waits for it.
            start.ArgumentList.Insert(0, start.FileName);
            start.ArgumentList.Insert(0, "--wait");
            start.ArgumentList.Insert(0, "--fork");
            start.FileName = "setsid";

            // A program started from a background job of a non-interactive shell (a CI script's `cmd &`) inherits
            // SIGINT as ignored, and .NET leaves an ignored SIGINT ignored, as a background job's should be. A
            // terminal's foreground program has it at its default: give the child that.
            InterruptAtDefault();
        }


        var process = Process.Start(start)!;
        var storm = new StormProcess(process, url);
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            try
            {
                // Any answer will do (without a key it is 401): the key is filed before the server listens.
                using var answer = await http.GetAsync(url + "/api/v1/");
                return storm;
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(Eventually.PollInterval);
        }

        await storm.DisposeAsync();
        throw new InvalidOperationException($"storm serve did not come up:\n{storm.Output}");
    }

    /// <summary>Runs one storm command to completion.</summary>
    public static Task<CliResult> RunAsync(params string[] arguments) => RunAsync(new Dictionary<string, string>(), arguments);

    /// <summary>Runs one storm command to completion with extra environment variables.</summary>
    public static async Task<CliResult> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = StartInfo(arguments, environment);

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // A command that should have ended (a server that should have refused to start) is not left running.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"storm {string.Join(' ', arguments)} did not end within 2 minutes:\n{await stdout}\n{await stderr}");
        }

        return new CliResult(process.ExitCode, await stdout, await stderr);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "signal")]
    private static extern nint SetSignalHandler(int signal, nint handler);

    private static void InterruptAtDefault()
    {
        const int sigint = 2;
        const nint sigIgn = 1, sigDfl = 0;
        if (OperatingSystem.IsLinux() && SetSignalHandler(sigint, sigDfl) is var before && before != sigIgn)
        {
            SetSignalHandler(sigint, before); // it was not ignored: this process keeps its own handling
        }
    }

    /// <summary>The server's resident memory now (Linux), in bytes.</summary>
    public long ResidentBytes()
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Kills the process and the actions it runs as a crash of its machine would (SIGKILL): nothing gets to clean up.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>
    /// Sends SIGINT to the process's whole group, as a terminal's Ctrl+C does, and waits up to <paramref name="limit"/>
    /// for it to exit; true when it did.
    /// </summary>
    public async Task<bool> InterruptGroupAsync(TimeSpan limit)
    {
        // The group is led by setsid's child (storm serve): signal that group and no other.
        var children = Process.Start(new ProcessStartInfo("pgrep", ["-P", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true })!;
        var leader = (await children.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Single();
        var stat = (await File.ReadAllTextAsync($"/proc/{leader}/stat")).Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (stat[2] != leader)
        {
            throw new InvalidOperationException($"storm serve ({leader}) does not lead its process group ({stat[2]})");
        }

        Process.Start("kill", ["-INT", "--", "-" + leader])!.WaitForExit();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Stops the process the way an operator does (SIGTERM) and waits for it.</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(timeout.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }

    private static ProcessStartInfo StartInfo(IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = RepositoryPaths.Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(StormDll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove("STORM_API_URL");
        start.Environment.Remove("STORM_STORAGE");
        foreach (var variable in new[] { "STORM_API_KEY", "ST2_API_KEY", "STORM_AUTH_TOKEN", "ST2_AUTH_TOKEN" })
        {
            start.Environment.Remove(variable);
        }

        start.Environment[Cli.Client.CredentialsFile.PathVariable] = CredentialsPath;
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        return start;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private sealed class FiledKeyHandler : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (!request.Headers.Contains("St2-Api-Key") && !request.Headers.Contains("X-Auth-Token")
                && Cli.Client.CredentialsFile.Read(request.RequestUri!, CredentialsPath) is { } key)
            {
                request.Headers.Add("St2-Api-Key", key);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }
}
