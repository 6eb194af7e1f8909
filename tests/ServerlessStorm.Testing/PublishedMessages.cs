using ServerlessStorm.Engine.Messaging;
using Xunit;

namespace ServerlessStorm.Testing;

/// <summary>Records what is published (and passes it on to a bus nothing listens to).</summary>
public sealed class PublishedMessages(IMessageBus inner) : DelegatingMessageBus(inner)
{
    private readonly List<(string Queue, BusMessage Message)> _published = [];

    public override Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
    {
        lock (_published)
        {
            _published.Add((queue, message));
        }

        return Task.CompletedTask;
    }

    public IEnumerable<BusMessage> On(string queue)
    {
        lock (_published)
        {
            return [.. _published.Where(p => p.Queue == queue).Select(p => p.Message)];
        }
    }

    /// <summary>The one message on <paramref name="queue"/>, removed.</summary>
    public BusMessage Take(string queue)
    {
        lock (_published)
        {
            var message = Assert.Single(_published, p => p.Queue == queue);
            _published.Remove(message);
            return message.Message;
        }
    }

    public void Clear()
    {
        lock (_published)
        {
            _published.Clear();
        }
    }
}
