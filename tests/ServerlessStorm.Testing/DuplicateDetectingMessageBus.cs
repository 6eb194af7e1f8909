using System.Collections.Concurrent;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Testing;

/// <summary>
/// A bus that drops a message whose id was published to its queue before, as Service Bus does with duplicate
/// detection on (the deployment turns it on): what the engine publishes twice on purpose must carry new ids.
/// </summary>
public sealed class DuplicateDetectingMessageBus(IMessageBus inner) : DelegatingMessageBus(inner)
{
    private readonly ConcurrentDictionary<(string Queue, string Id), bool> _seen = new();

    public int Dropped { get; private set; }

    public override Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
    {
        if (!_seen.TryAdd((queue, message.Id), true))
        {
            Dropped++;
            return Task.CompletedTask;
        }

        return Inner.PublishAsync(queue, message, cancellationToken);
    }
}
