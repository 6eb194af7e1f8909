namespace ServerlessStorm.Engine.Messaging;

/// <summary>A message on the bus: its id (for logs and de-duplication), its body and how often it was delivered.</summary>
public sealed record BusMessage(string Id, ReadOnlyMemory<byte> Body, int DeliveryCount = 1)
{
    /// <summary>When publishing: deliver no sooner than this after now (a retry's delay).</summary>
    public TimeSpan Delay { get; init; }
}

/// <summary>
/// Handles one message. Returning acknowledges it; throwing makes the bus deliver it again later (a
/// <see cref="PoisonMessageException"/> dead-letters it at once).
/// </summary>
public delegate Task BusHandler(BusMessage message, CancellationToken cancellationToken);

/// <summary>
/// The transport between the engine's stages. Delivery is at least once: a message whose handler throws is
/// delivered again (up to a limit, then dead-lettered), so handlers must be idempotent.
/// </summary>
public interface IMessageBus
{
    Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken);

    /// <summary>Starts delivering <paramref name="queue"/>'s messages to <paramref name="handler"/> until the result is disposed.</summary>
    Task<IAsyncDisposable> SubscribeAsync(string queue, BusHandler handler, CancellationToken cancellationToken);

    /// <summary>The messages of <paramref name="queue"/> the bus gave up on, oldest first, with the reason.</summary>
    Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(string queue, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Puts dead-lettered messages of <paramref name="queue"/> back on it with a fresh delivery count: those with
    /// <paramref name="messageId"/>, or all when it is null. Returns how many.
    /// </summary>
    Task<int> ReplayDeadLettersAsync(string queue, string? messageId, CancellationToken cancellationToken);

    /// <summary>
    /// What waits on <paramref name="queue"/> now (see <see cref="QueueBacklog"/>). A snapshot for the backlog gauges:
    /// each transport says how exactly it can count.
    /// </summary>
    Task<QueueBacklog> GetBacklogAsync(string queue, CancellationToken cancellationToken);
}

/// <summary>
/// A queue's backlog. <paramref name="Depth"/>: its messages not yet completed — waiting, delayed until later, or
/// being handled (dead letters not included). <paramref name="OldestEnqueuedAt"/>: since when the oldest message that
/// is due and waiting for a consumer has been waiting (its sending; for a delayed message, when it fell due), or null
/// when none waits.
/// </summary>
public sealed record QueueBacklog(long Depth, DateTimeOffset? OldestEnqueuedAt)
{
    public static readonly QueueBacklog Empty = new(0, null);
}

/// <summary>A message the bus gave up on: its queue, its id, why, after how many deliveries, and when.</summary>
public sealed record DeadLetter(string Queue, string MessageId, string Reason, int Deliveries, DateTimeOffset DeadLetteredAt);

/// <summary>Thrown by a handler for a message that no redelivery can help (it cannot be read): the bus dead-letters it at once.</summary>
public class PoisonMessageException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Why a message is dead-lettered, as the dead-letter list shows it.</summary>
public static class DeadLetterReason
{
    public const int MaxLength = 1000;

    public static string Of(Exception error, int deliveries)
    {
        var cause = $"{error.GetType().Name}: {error.Message}";
        var reason = error is PoisonMessageException ? $"unreadable on delivery {deliveries}: {error.Message}" : $"failed {deliveries} deliveries; last error {cause}";
        return reason.Length <= MaxLength ? reason : reason[..MaxLength];
    }
}

/// <summary>The queues the engine uses.</summary>
public static class StormQueues
{
    public const string TriggerInstances = "trigger-instances";
    public const string Executions = "action-executions";

    /// <summary>Each timer's next occurrence, delayed until it falls due.</summary>
    public const string Timers = "timers";

    public static readonly IReadOnlyList<string> All = [TriggerInstances, Executions, Timers];
}

/// <summary>Retry behaviour shared by the transports.</summary>
public sealed class BusOptions
{
    public const string Section = "Bus";

    /// <summary>Deliveries before a message is dead-lettered.</summary>
    public int MaxDeliveryCount { get; set; } = 5;

    /// <summary>Wait before a failed message is delivered again.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Messages handled at once per subscription.</summary>
    public int Concurrency { get; set; } = 16;

    /// <summary>How often each host asks the bus for its queues' backlog (the backlog gauges); zero turns it off.</summary>
    public TimeSpan BacklogSampleInterval { get; set; } = TimeSpan.FromSeconds(30);
}
