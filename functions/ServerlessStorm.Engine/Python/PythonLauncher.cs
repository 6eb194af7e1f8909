namespace ServerlessStorm.Engine.Python;

/// <summary>What a Python wrapper process is started with, wherever it runs.</summary>
/// <param name="Id">The channel's id: the execution id, or the sensor poll's id.</param>
/// <param name="Pack">The pack whose code runs (its folder name; the remote host has its own copy of the packs).</param>
/// <param name="Arguments">The wrapper's arguments (after the interpreter and the wrapper script).</param>
/// <param name="Environment">The whole environment of the process (nothing else is inherited).</param>
/// <param name="WorkingDirectory">Its working directory, or null for the host's temp folder.</param>
/// <param name="Deadline">When the host running it kills it whatever happens (the timeout and a grace period), so nothing is left behind.</param>
public sealed record PythonLaunch(string Id, string Pack, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment,
    string? WorkingDirectory, TimeSpan Deadline)
{
    /// <summary>The interpreter a local launch runs (the pack's virtualenv or the host's); a remote Python host runs its own.</summary>
    public string? Interpreter { get; init; }
}

/// <summary>
/// A running Python wrapper: JSON lines both ways (its protocol messages out, the job and answers in). Killing it
/// kills everything it started.
/// </summary>
public interface IPythonProcess : IAsyncDisposable
{
    /// <summary>Sends one line to the wrapper's standard input.</summary>
    Task SendAsync(string line, CancellationToken cancellationToken);

    /// <summary>The wrapper's protocol lines until it exits; then its exit code is set.</summary>
    IAsyncEnumerable<string> ReadLinesAsync(CancellationToken cancellationToken);

    /// <summary>The exit code once it has exited (null while it runs, or when it was killed).</summary>
    int? ExitCode { get; }

    /// <summary>What the wrapper itself wrote to stderr outside the protocol (a crash of the wrapper), up to a limit.</summary>
    string Diagnostics { get; }

    /// <summary>Kills the wrapper and its process tree.</summary>
    Task KillAsync();
}

/// <summary>Starts Python wrappers: as local processes (storm serve) or on the Python host (Azure).</summary>
public interface IPythonLauncher
{
    /// <summary>
    /// Whether launches run on this machine with the interpreter chosen here (the pack's virtualenv or the host's);
    /// a remote Python host runs its own, with the packs' dependencies it was deployed with.
    /// </summary>
    bool ChoosesInterpreter => true;

    Task<IPythonProcess> StartAsync(PythonLaunch launch, CancellationToken cancellationToken);
}
