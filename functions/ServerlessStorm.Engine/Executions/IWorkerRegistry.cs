namespace ServerlessStorm.Engine.Executions;

/// <summary>
/// Which worker processes are alive. An execution records the worker that claimed it; a request for it that arrives
/// while it is recorded as running is a duplicate while that worker lives, and takes it over once the worker is gone
/// (killed, or its host lost), so a crash delays the work by seconds, not by the action's whole timeout.
/// </summary>
public interface IWorkerRegistry
{
    /// <summary>This process's worker id, unique to this run of it.</summary>
    string Self { get; }

    /// <summary>How long a dead worker may still count as alive: a duplicate request is checked again after this.</summary>
    TimeSpan Lease { get; }

    Task<bool> IsGoneAsync(string worker, CancellationToken cancellationToken);

    /// <summary>A new worker id: the machine, the process and a random part (a restarted process on the same pid is another worker).</summary>
    public static string NewId() => $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
}

/// <summary>
/// The worker registry of a process that alone runs what its bus carries (<c>storm serve</c> on its in-process bus):
/// every other worker an execution names is an earlier run of this server, so it is gone.
/// </summary>
public sealed class SingleProcessWorkerRegistry : IWorkerRegistry
{
    public string Self { get; } = IWorkerRegistry.NewId();

    public TimeSpan Lease => TimeSpan.Zero;

    public Task<bool> IsGoneAsync(string worker, CancellationToken cancellationToken) => Task.FromResult(worker != Self);
}
