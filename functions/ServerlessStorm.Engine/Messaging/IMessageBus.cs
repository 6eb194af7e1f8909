namespace ServerlessStorm.Engine.Messaging;

/// <summary>A message on the bus: its id (for logs and de-duplication), its body and how often it was delivered.</summary>
public sealed record BusMessage(string Id, ReadOnlyMemory<byte> Body, int DeliveryCount = 1)
{
    /// <summary>When publishing: deliver no sooner than this after now (a retry's delay).</summary>
    public TimeSpan Delay { get; init; }
}

/// <summary>Handles one message. Returning acknowledges it; throwing makes the bus deliver it again later.</summary>
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
}

/// <summary>The queues the engine uses.</summary>
public static class StormQueues
{
    public const string TriggerInstances = "trigger-instances";
    public const string Executions = "action-executions";
}

/// <summary>Retry behaviour shared by the transports.</summary>
public sealed class BusOptions
{
    /// <summary>Deliveries before a message is dead-lettered.</summary>
    public int MaxDeliveryCount { get; set; } = 5;

    /// <summary>Wait before a failed message is delivered again.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Messages handled at once per subscription.</summary>
    public int Concurrency { get; set; } = 16;
}
