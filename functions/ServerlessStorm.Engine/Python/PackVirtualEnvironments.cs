using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Python;

/// <summary>Where a pack's Python stands.</summary>
public enum PythonEnvironmentState
{
    /// <summary>No requirements.txt: the pack runs on the host's interpreter.</summary>
    Host,

    /// <summary>Its virtualenv is built from the current requirements.txt and interpreter.</summary>
    Current,

    /// <summary>It has requirements.txt and no virtualenv yet.</summary>
    Missing,

    /// <summary>Its virtualenv was built from another requirements.txt or interpreter.</summary>
    Stale,
}

/// <summary>A pack's Python: its state, the interpreter to run (when there is one to use), why, and the last build's error in this process.</summary>
public sealed record PythonEnvironmentStatus(PythonEnvironmentState State, string? Interpreter, string Reason, string? LastError = null)
{
    public JsonObject ToJson() => new()
    {
        ["state"] = State.ToString().ToLowerInvariant(),
        ["interpreter"] = Interpreter,
        ["reason"] = Reason,
        ["last_error"] = LastError,
    };
}

/// <summary>What <see cref="PackVirtualEnvironments.EnsureAsync"/> did.</summary>
public enum VirtualenvOutcome
{
    /// <summary>The pack has no requirements.txt; nothing to build.</summary>
    NotNeeded,

    /// <summary>It was already current (perhaps built by another process while this one waited for the lock).</summary>
    AlreadyCurrent,

    /// <summary>It was built now and swapped in.</summary>
    Built,
}

/// <summary>
/// Packs' Python as StackStorm has it: a pack with a <c>requirements.txt</c> gets a virtualenv of its own, built with
/// the host interpreter and pip, under <see cref="PythonOptions.VirtualenvsPath"/>; a pack without one runs on the
/// host interpreter. A virtualenv records what it was built from, so a changed requirements.txt or interpreter makes
/// it stale, and a stale or missing one is never used in its place: <see cref="InterpreterFor"/> refuses.
/// </summary>
/// <remarks>
/// Layout: <c>&lt;path&gt;/&lt;pack&gt;</c> is a symbolic link to the build in use, <c>&lt;path&gt;/.builds/&lt;pack&gt;/&lt;id&gt;</c>.
/// A build happens in a new folder (virtualenvs cannot be moved: their scripts name their own path), and only a
/// finished one replaces the link, by rename, which is atomic: a failed build leaves the old one in use. A lock file
/// per pack keeps two processes (or hosts sharing the folder) from building the same pack at once.
/// </remarks>
public sealed class PackVirtualEnvironments(IOptions<PythonOptions> options, ILogger<PackVirtualEnvironments> logger) : IPythonEnvironments
{
    public const string RequirementsFile = "requirements.txt";
    public const string StampFile = "storm-virtualenv.json";
    private const int PipOutputTailLines = 40;

    private static readonly ConcurrentDictionary<string, string> InterpreterVersions = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, bool> HostPipTargeting = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _lastErrors = new(StringComparer.Ordinal);

    private PythonOptions Options => options.Value;

    /// <summary>Whether missing and stale virtualenvs are built when the packs load (<see cref="PythonOptions.BuildVirtualenvsAtStart"/>).</summary>
    public bool BuildsAtStart => Options.BuildVirtualenvsAtStart;

    /// <summary>The folder all packs' virtualenvs live in (absolute).</summary>
    public string Root => Path.GetFullPath(Options.VirtualenvsPath);

    /// <summary>The path a pack's virtualenv is used from (a link to its current build).</summary>
    public string PathFor(string pack) => Path.Combine(Root, FolderName(pack));

    /// <summary>
    /// <paramref name="pack"/> when it is a plain folder name; otherwise refused: the name makes paths here (the link,
    /// <c>.builds/&lt;pack&gt;</c>, its lock file), and '..', a separator or a leading dot (<c>.builds</c> itself)
    /// would point them elsewhere. The loader checks refs too; this holds whoever calls.
    /// </summary>
    public static string FolderName(string pack) =>
        pack.Length > 0 && pack[0] != '.' && pack.IndexOfAny(['/', '\\']) < 0 && pack.IndexOfAny(Path.GetInvalidFileNameChars()) < 0
            && string.Equals(Path.GetFileName(pack), pack, StringComparison.Ordinal)
            ? pack
            : throw new PythonEnvironmentException($"'{pack}' is not a pack name a virtualenv can be built for (it must be a plain folder name)");

    // What pip may see of the host's environment: pip runs build backends (setup.py) of whatever the requirements
    // name, so the host's secrets (Storm__Datastore__EncryptionKey, connection strings) stay out. pip's own settings,
    // proxies, certificates, temp and config folders go in. Proxy names are matched in either case (http_proxy).
    private static readonly string[] PipVariables =
    [
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "TMPDIR", "TEMP", "TMP", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "SYSTEMROOT",
    ];

    /// <summary>Sets <paramref name="start"/>'s environment to the clean one (PATH, HOME, LANG) plus <c>PIP_*</c> and <see cref="PipVariables"/> of the host's.</summary>
    public static void PipEnvironment(ProcessStartInfo start)
    {
        LocalProcess.CleanEnvironment(start);
        foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables())
        {
            if (variable.Key is string name && variable.Value is string value
                && (name.StartsWith("PIP_", StringComparison.Ordinal) || PipVariables.Contains(name, StringComparer.OrdinalIgnoreCase)))
            {
                start.Environment[name] = value;
            }
        }
    }

    public string InterpreterFor(PackDefinition pack)
    {
        if (!File.Exists(Path.Combine(pack.Directory, RequirementsFile)))
        {
            FolderName(pack.Name);
            return HostPython.Resolve(Options);
        }

        var status = Describe(pack.Name, pack.Directory);
        return status.State switch
        {
            PythonEnvironmentState.Host or PythonEnvironmentState.Current => status.Interpreter!,
            _ => throw new PythonEnvironmentException(
                $"pack '{pack.Name}' has a {RequirementsFile} and its virtualenv {status.Reason}: run `storm pack install {pack.Directory}` to build it" +
                (status.LastError is { } error ? $" (the last build failed: {FirstLine(error)})" : "")),
        };
    }

    /// <summary>Where <paramref name="pack"/>'s Python stands, read from disk (cheap enough to ask per run).</summary>
    public PythonEnvironmentStatus Describe(string pack, string packDirectory)
    {
        FolderName(pack);
        var requirements = Path.Combine(packDirectory, RequirementsFile);
        if (!File.Exists(requirements))
        {
            try
            {
                return new(PythonEnvironmentState.Host, HostPython.Resolve(Options), $"no {RequirementsFile}: the host's interpreter");
            }
            catch (PythonEnvironmentException ex)
            {
                // A host without Python (the .NET Function app, whose Python runs on the Python host) still lists its packs.
                return new(PythonEnvironmentState.Host, null, $"no {RequirementsFile}: the host's interpreter, which is not here: {ex.Message}");
            }
        }

        var error = _lastErrors.GetValueOrDefault(pack);
        var python = VirtualenvPython(PathFor(pack));
        var stamp = ReadStamp(PathFor(pack));
        if (stamp is null || !File.Exists(python))
        {
            return new(PythonEnvironmentState.Missing, null, $"is not built (expected at {PathFor(pack)})", error);
        }

        var wanted = Wanted(requirements);
        var reason = !string.Equals(stamp["requirements_sha256"]?.ToString(), wanted.RequirementsHash, StringComparison.Ordinal)
            ? $"was built from another {RequirementsFile}"
            : !string.Equals(stamp["interpreter"]?.ToString(), wanted.Interpreter, StringComparison.Ordinal)
                ? $"was built with {stamp["interpreter"]}, not {wanted.Interpreter}"
                : !string.Equals(stamp["interpreter_version"]?.ToString(), wanted.Version, StringComparison.Ordinal)
                    ? $"was built with Python {stamp["interpreter_version"]}, and the interpreter is now {wanted.Version}"
                    : null;
        return reason is null
            ? new(PythonEnvironmentState.Current, python, $"built {stamp["built"]} from {RequirementsFile} with Python {wanted.Version}", error)
            : new(PythonEnvironmentState.Stale, null, $"is stale: it {reason}", error);
    }

    /// <summary>
    /// Builds <paramref name="pack"/>'s virtualenv when it has requirements and the virtualenv is missing or stale (or
    /// always, with <paramref name="force"/>). pip's output goes to <paramref name="output"/> line by line; a failed
    /// build throws <see cref="PythonEnvironmentException"/> with the end of it, and leaves the previous virtualenv.
    /// </summary>
    public async Task<VirtualenvOutcome> EnsureAsync(string pack, string packDirectory, bool force = false, IProgress<string>? output = null, CancellationToken cancellationToken = default)
    {
        FolderName(pack);
        var requirements = Path.Combine(packDirectory, RequirementsFile);
        if (!File.Exists(requirements))
        {
            return VirtualenvOutcome.NotNeeded;
        }

        if (!force && Describe(pack, packDirectory).State == PythonEnvironmentState.Current)
        {
            return VirtualenvOutcome.AlreadyCurrent;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(Options.VirtualenvTimeout));
        var builds = Path.Combine(Root, ".builds", pack);
        Directory.CreateDirectory(builds);
        using var fileLock = await LockAsync(pack, builds + ".lock", timeout.Token);

        // Another process may have built it while this one waited.
        var before = Describe(pack, packDirectory);
        if (!force && before.State == PythonEnvironmentState.Current)
        {
            return VirtualenvOutcome.AlreadyCurrent;
        }

        var started = Stopwatch.GetTimestamp();
        StormLogs.VirtualenvBuilding(logger, pack, force && before.State == PythonEnvironmentState.Current ? "rebuild asked for" : before.Reason);
        var build = Path.Combine(builds, $"{DateTime.UtcNow:yyyyMMddHHmmss}-{Guid.NewGuid():N}"[..26]);
        try
        {
            var wanted = Wanted(requirements);
            // With a host pip that can install into another interpreter (--python, pip 22.3), the virtualenv needs no pip
            // of its own: seeding one is most of a build's time. Otherwise it gets its own, as StackStorm's have.
            if (HostPipTargets(wanted.Interpreter))
            {
                await RunAsync(wanted.Interpreter, ["-m", "venv", "--without-pip", build], packDirectory, "creating the virtualenv", output, cancellationToken, timeout.Token);
                await RunAsync(wanted.Interpreter, ["-m", "pip", "--python", VirtualenvPython(build), .. PipInstall(requirements)], packDirectory, "pip install", output, cancellationToken, timeout.Token);
            }
            else
            {
                await RunAsync(wanted.Interpreter, ["-m", "venv", build], packDirectory, "creating the virtualenv", output, cancellationToken, timeout.Token);
                await RunAsync(VirtualenvPython(build), ["-m", "pip", .. PipInstall(requirements)], packDirectory, "pip install", output, cancellationToken, timeout.Token);
            }
            var stamp = new JsonObject
            {
                ["pack"] = pack,
                ["requirements_sha256"] = wanted.RequirementsHash,
                ["interpreter"] = wanted.Interpreter,
                ["interpreter_version"] = wanted.Version,
                ["built"] = DateTime.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            };
            await File.WriteAllTextAsync(Path.Combine(build, StampFile), stamp.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), CancellationToken.None);
            var previous = SwapIn(pack, build);
            RemoveOldBuilds(builds, keep: [build, previous]);
        }
        catch (Exception ex) when (ex is PythonEnvironmentException or IOException or UnauthorizedAccessException)
        {
            TryDelete(build);
            var message = $"pack '{pack}': its virtualenv could not be built ({(before.State == PythonEnvironmentState.Missing ? "there is none yet" : "the previous one is kept")}): {ex.Message}";
            _lastErrors[pack] = message;
            StormLogs.VirtualenvBuildFailed(logger, pack, FirstLine(ex.Message));
            throw new PythonEnvironmentException(message);
        }
        catch
        {
            TryDelete(build);
            throw;
        }

        _lastErrors.TryRemove(pack, out _);
        StormLogs.VirtualenvBuilt(logger, pack, PathFor(pack), (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return VirtualenvOutcome.Built;
    }

    private List<string> PipInstall(string requirements)
    {
        List<string> arguments = ["install", "--disable-pip-version-check", "--no-input", "-r", requirements];
        if (Options.NoIndex)
        {
            arguments.Add("--no-index");
        }

        if (!string.IsNullOrWhiteSpace(Options.IndexUrl))
        {
            arguments.AddRange(["--index-url", Options.IndexUrl]);
        }

        foreach (var links in Options.FindLinks.Where(l => !string.IsNullOrWhiteSpace(l)))
        {
            arguments.AddRange(["--find-links", Path.IsPathRooted(links) || links.Contains("://", StringComparison.Ordinal) ? links : Path.GetFullPath(links)]);
        }

        arguments.AddRange(Options.PipArguments);
        return arguments;
    }

    private static async Task RunAsync(string program, IReadOnlyList<string> arguments, string workingDirectory, string step, IProgress<string>? output, CancellationToken cancellationToken, CancellationToken timeout)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // pip's own settings from the environment still apply (PIP_INDEX_URL, a pip.conf); its prompts and colours do not.
        PipEnvironment(start);
        start.Environment["PIP_NO_INPUT"] = "1";
        start.Environment["PIP_NO_COLOR"] = "1";
        start.Environment["PYTHONUNBUFFERED"] = "1";

        var tail = new Queue<string>();
        void Line(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (tail)
            {
                tail.Enqueue(line);
                if (tail.Count > PipOutputTailLines)
                {
                    tail.Dequeue();
                }
            }

            output?.Report(line);
        }

        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new PythonEnvironmentException($"{step}: cannot run {program}: {ex.Message}");
        }

        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(timeout);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            throw new PythonEnvironmentException($"{step} took longer than the virtualenv timeout (Storm:Python:VirtualenvTimeout)");
        }

        // The output's last lines arrive after the exit is seen; WaitForExit without a timeout waits for them.
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            string text;
            lock (tail)
            {
                text = string.Join(Environment.NewLine, tail);
            }

            throw new PythonEnvironmentException($"{step} failed (exit code {process.ExitCode}):{Environment.NewLine}{text}");
        }
    }

    // Takes the pack's lock file, waiting while another process holds it.
    private async Task<FileStream> LockAsync(string pack, string path, CancellationToken cancellationToken)
    {
        var logged = false;
        while (true)
        {
            try
            {
                // FileShare.None takes an advisory lock (flock) on Unix: other processes, and other opens here, wait.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (!cancellationToken.IsCancellationRequested)
            {
                if (!logged)
                {
                    StormLogs.VirtualenvLockWaiting(logger, pack, path);
                    logged = true;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
            }
        }
    }

    // Points the pack's link at the new build by renaming a new link over it; returns the build it pointed at before.
    private string? SwapIn(string pack, string build)
    {
        var link = PathFor(pack);
        var previous = new FileInfo(link).LinkTarget is { } target ? Path.GetFullPath(target, Root) : null;
        if (previous is null && Directory.Exists(link))
        {
            // A plain folder there (made by hand, or an older layout) cannot be renamed over: it goes first.
            Directory.Delete(link, recursive: true);
        }

        var fresh = Path.Combine(Path.GetDirectoryName(build)!, "link-" + Path.GetFileName(build));
        File.CreateSymbolicLink(fresh, build);
        if (OperatingSystem.IsWindows())
        {
            if (File.Exists(link) || Directory.Exists(link))
            {
                Directory.Delete(link);
            }

            Directory.Move(fresh, link);
        }
        else if (Rename(fresh, link) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            TryDelete(fresh);
            throw new IOException($"cannot swap in the new virtualenv at {link} (errno {errno})");
        }

        return previous;
    }

    private static void RemoveOldBuilds(string builds, IReadOnlyCollection<string?> keep)
    {
        // The build replaced just now stays too: an action started from it may still be running.
        foreach (var directory in Directory.EnumerateDirectories(builds))
        {
            if (!keep.Contains(directory, StringComparer.Ordinal))
            {
                TryDelete(directory);
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (new FileInfo(path).LinkTarget is not null)
            {
                File.Delete(path);
            }
            else if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    private (string RequirementsHash, string Interpreter, string Version) Wanted(string requirements)
    {
        var interpreter = HostPython.Resolve(Options);
        return (Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(requirements))), interpreter, InterpreterVersions.GetOrAdd(interpreter, AskVersion));
    }

    // Whether the interpreter's pip is 22.3 or later, which installs into another interpreter's environment with --python.
    private static bool HostPipTargets(string interpreter) => HostPipTargeting.GetOrAdd(interpreter, i =>
    {
        var start = new ProcessStartInfo(i) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        PipEnvironment(start);
        foreach (var argument in new[] { "-m", "pip", "--version" })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        _ = process.StandardError.ReadToEndAsync();
        var words = process.StandardOutput.ReadToEnd().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        process.WaitForExit();
        return process.ExitCode == 0 && words is ["pip", var version, ..] && Version.TryParse(string.Concat(version.TakeWhile(c => char.IsDigit(c) || c == '.')).Trim('.'), out var pip)
            && pip >= new Version(22, 3);
    });

    private static string AskVersion(string interpreter)
    {
        var start = new ProcessStartInfo(interpreter) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        PipEnvironment(start);
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("import sys; print('%d.%d.%d' % sys.version_info[:3])");
        using var process = Process.Start(start)!;
        var version = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return process.ExitCode == 0 && version.Length > 0 ? version : throw new PythonEnvironmentException($"the Python interpreter '{interpreter}' did not tell its version");
    }

    private static JsonObject? ReadStamp(string virtualenv)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(Path.Combine(virtualenv, StampFile))) as JsonObject;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    private static string VirtualenvPython(string virtualenv) =>
        OperatingSystem.IsWindows() ? Path.Combine(virtualenv, "Scripts", "python.exe") : Path.Combine(virtualenv, "bin", "python");

    private static string FirstLine(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // pip's reason is its last ERROR line; the first line only says which step failed.
        var error = lines.LastOrDefault(l => l.StartsWith("ERROR:", StringComparison.Ordinal));
        return error is null ? lines.FirstOrDefault() ?? text : $"{lines[0]} {error}";
    }

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename([MarshalAs(UnmanagedType.LPUTF8Str)] string from, [MarshalAs(UnmanagedType.LPUTF8Str)] string to);
}
