using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Testing;

/// <summary>A bus that passes everything to another; tests override what they watch or hold back.</summary>
public abstract class DelegatingMessageBus(IMessageBus inner) : IMessageBus
{
    protected IMessageBus Inner => inner;

    public virtual Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken) =>
        inner.PublishAsync(queue, message, cancellationToken);

    public Task<IAsyncDisposable> SubscribeAsync(string queue, BusHandler handler, CancellationToken cancellationToken) =>
        inner.SubscribeAsync(queue, handler, cancellationToken);

    public Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(string queue, int limit, CancellationToken cancellationToken) =>
        inner.ListDeadLettersAsync(queue, limit, cancellationToken);

    public Task<int> ReplayDeadLettersAsync(string queue, string? messageId, CancellationToken cancellationToken) =>
        inner.ReplayDeadLettersAsync(queue, messageId, cancellationToken);

    public virtual Task<QueueBacklog> GetBacklogAsync(string queue, CancellationToken cancellationToken) =>
        inner.GetBacklogAsync(queue, cancellationToken);
}
