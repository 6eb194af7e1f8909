using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ServerlessStorm.Engine.Messaging;

/// <summary>
/// The in-process bus: one channel per queue, with the same redelivery and dead-letter rules as the durable
/// transports. Messages published before anyone subscribes wait in the channel.
/// </summary>
public sealed partial class InMemoryMessageBus(BusOptions? options = null, ILogger<InMemoryMessageBus>? logger = null) : IMessageBus
{
    private readonly BusOptions _options = options ?? new BusOptions();
    private readonly ILogger _logger = logger ?? NullLogger<InMemoryMessageBus>.Instance;
    private readonly ConcurrentDictionary<string, Channel<BusMessage>> _queues = new(StringComparer.Ordinal);
    private readonly Lock _deadLetterGate = new();
    private readonly List<(DeadLetter Letter, BusMessage Message)> _deadLetters = [];

    /// <summary>Messages that failed <see cref="BusOptions.MaxDeliveryCount"/> times, or could not be read.</summary>
    public IReadOnlyCollection<(string Queue, BusMessage Message)> DeadLetters
    {
        get
        {
            lock (_deadLetterGate)
            {
                return [.. _deadLetters.Select(d => (d.Letter.Queue, d.Message))];
            }
        }
    }

    public Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(string queue, int limit, CancellationToken cancellationToken)
    {
        lock (_deadLetterGate)
        {
            return Task.FromResult<IReadOnlyList<DeadLetter>>([.. _deadLetters.Where(d => d.Letter.Queue == queue).Take(limit).Select(d => d.Letter)]);
        }
    }

    public async Task<int> ReplayDeadLettersAsync(string queue, string? messageId, CancellationToken cancellationToken)
    {
        List<BusMessage> replayed;
        lock (_deadLetterGate)
        {
            bool Matches((DeadLetter Letter, BusMessage Message) d) => d.Letter.Queue == queue && (messageId is null || d.Letter.MessageId == messageId);
            replayed = [.. _deadLetters.Where(Matches).Select(d => d.Message)];
            _deadLetters.RemoveAll(Matches);
        }

        foreach (var message in replayed)
        {
            await PublishAsync(queue, message, cancellationToken);
        }

        return replayed.Count;
    }

    public Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
    {
        var channel = Queue(queue);
        if (message.Delay <= TimeSpan.Zero)
        {
            return channel.Writer.WriteAsync(message with { DeliveryCount = 0 }, cancellationToken).AsTask();
        }

        // In memory, a delayed message waits in a timer: like everything on this bus, it does not survive a restart.
        _ = Task.Delay(message.Delay, CancellationToken.None).ContinueWith(_ => channel.Writer.TryWrite(message with { DeliveryCount = 0, Delay = TimeSpan.Zero }), TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public Task<IAsyncDisposable> SubscribeAsync(string queue, BusHandler handler, CancellationToken cancellationToken)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Queue(queue);
        var workers = Enumerable.Range(0, Math.Max(1, _options.Concurrency))
            .Select(_ => Task.Run(() => WorkAsync(queue, channel, handler, stop.Token), CancellationToken.None))
            .ToArray();
        return Task.FromResult<IAsyncDisposable>(new Subscription(stop, workers));
    }

    private Channel<BusMessage> Queue(string name) =>
        _queues.GetOrAdd(name, _ => Channel.CreateUnbounded<BusMessage>());

    private async Task WorkAsync(string queue, Channel<BusMessage> channel, BusHandler handler, CancellationToken stop)
    {
        try
        {
            await foreach (var received in channel.Reader.ReadAllAsync(stop))
            {
                var message = received with { DeliveryCount = received.DeliveryCount + 1 };
                try
                {
                    await handler(message, stop);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    // Shutting down mid-message: put it back so nothing accepted is lost.
                    channel.Writer.TryWrite(received);
                    return;
                }
                catch (Exception ex)
                {
                    Redeliver(queue, channel, message, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private void Redeliver(string queue, Channel<BusMessage> channel, BusMessage message, Exception error)
    {
        if (message.DeliveryCount >= _options.MaxDeliveryCount || error is PoisonMessageException)
        {
            LogDeadLettered(_logger, message.Id, queue, message.DeliveryCount, error);
            lock (_deadLetterGate)
            {
                _deadLetters.Add((new DeadLetter(queue, message.Id, DeadLetterReason.Of(error, message.DeliveryCount), message.DeliveryCount, DateTimeOffset.UtcNow), message));
            }

            return;
        }

        LogRetrying(_logger, message.Id, queue, message.DeliveryCount, Diagnostics.ExceptionCause.Of(error));
        _ = Task.Delay(_options.RetryDelay).ContinueWith(_ => channel.Writer.TryWrite(message), TaskScheduler.Default);
    }

    // The cause without a stack trace: while storage is down every message fails the same way, again and again.
    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {Id} on {Queue} failed on delivery {Count} ({Cause}); it will be delivered again")]
    private static partial void LogRetrying(ILogger logger, string id, string queue, int count, string cause);

    [LoggerMessage(Level = LogLevel.Error, Message = "Message {Id} on {Queue} failed {Count} times and was dead-lettered")]
    private static partial void LogDeadLettered(ILogger logger, string id, string queue, int count, Exception error);

    private sealed class Subscription(CancellationTokenSource stop, Task[] workers) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            await Task.WhenAll(workers);
            stop.Dispose();
        }
    }
}
