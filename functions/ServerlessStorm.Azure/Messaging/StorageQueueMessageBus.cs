using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Azure.Messaging;

/// <summary>Polling and visibility settings of the Storage Queue transport (configuration section <c>StorageQueues</c>).</summary>
public sealed class StorageQueueOptions
{
    public const string Section = "StorageQueues";

    /// <summary>
    /// How long a received message stays hidden; if the consumer dies, it reappears after this. A live consumer keeps
    /// it hidden while its handler runs (renewing at half this), however long the action takes. Short, so a crash
    /// delays work by seconds, not minutes; the renewals cost one request per message in flight every 10 s.
    /// </summary>
    public TimeSpan VisibilityTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Longest wait between polls of an empty queue (the wait doubles from 10 ms up to this).</summary>
    public TimeSpan MaxPollingInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Messages fetched per poll (the service allows at most 32).</summary>
    public int BatchSize { get; set; } = 32;
}

/// <summary>
/// The bus on Azure Storage Queues. A message is deleted only after its handler succeeded; a failed one is made
/// visible again after the retry delay, and after <see cref="BusOptions.MaxDeliveryCount"/> deliveries it moves to
/// <c>{queue}-poison</c> (the Functions host's convention). Bodies over the queue's 64 KB limit travel as a blob.
/// </summary>
public sealed class StorageQueueMessageBus : IMessageBus
{
    private const int MaxInlineBytes = 48 * 1024;
    private readonly QueueServiceClient _service;
    private readonly PayloadBlobs _blobs;
    private readonly StorageNames _names;
    private readonly BusOptions _bus;
    private readonly StorageQueueOptions _options;
    private readonly ILogger<StorageQueueMessageBus> _logger;
    private readonly ConcurrentDictionary<string, Lazy<Task<QueueClient>>> _queues = new(StringComparer.Ordinal);

    // A receive loop in this process backs off while its queue is empty; a message sent from this process wakes it,
    // so a local stack does not wait out the backoff between its own stages. Other hosts still poll.
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _wakeUps = new(StringComparer.Ordinal);

    public StorageQueueMessageBus(IOptions<AzureStorageOptions> storage, IOptions<BusOptions> bus, IOptions<StorageQueueOptions> options, ILogger<StorageQueueMessageBus> logger)
    {
        var clients = new StorageClients(storage.Value);
        _service = clients.Queues;
        _names = clients.Names;
        _blobs = new PayloadBlobs(clients.Blobs.GetBlobContainerClient(clients.Names.BusPayloadsContainer), 0);
        _bus = bus.Value;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>The queue name a bus queue maps to (queue names are lower case, 3-63 characters).</summary>
    public string QueueName(string queue) => _names.Queue(queue);

    public async Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
    {
        var client = await QueueAsync(QueueName(queue));
        await client.SendMessageAsync(await ToQueueTextAsync(message, cancellationToken),
            visibilityTimeout: message.Delay > TimeSpan.Zero ? message.Delay : null, timeToLive: null, cancellationToken);
        if (message.Delay <= TimeSpan.Zero && _wakeUps.TryGetValue(client.Name, out var wakeUp) && wakeUp.CurrentCount == 0)
        {
            try
            {
                wakeUp.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another send woke it first.
            }
        }
    }

    public async Task<IAsyncDisposable> SubscribeAsync(string queue, BusHandler handler, CancellationToken cancellationToken)
    {
        var client = await QueueAsync(QueueName(queue));
        var poison = await QueueAsync(_names.PoisonQueue(queue));
        var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loop = Task.Run(() => ReceiveLoopAsync(client, poison, handler, stop.Token), CancellationToken.None);
        return new Subscription(stop, loop);
    }

    private async Task ReceiveLoopAsync(QueueClient queue, QueueClient poison, BusHandler handler, CancellationToken stop)
    {
        var idle = TimeSpan.FromMilliseconds(10);
        var wakeUp = _wakeUps.GetOrAdd(queue.Name, _ => new SemaphoreSlim(0, 1));
        using var slots = new SemaphoreSlim(Math.Max(1, _bus.Concurrency));
        var inFlight = new ConcurrentDictionary<Task, byte>();
        while (!stop.IsCancellationRequested)
        {
            QueueMessage[] received;
            try
            {
                // Not cancelled by the stop token: a receive abandoned in flight would hide its messages until their
                // visibility timeout. Messages that arrive after the stop are released at once instead.
                var batch = Math.Clamp(Math.Min(_options.BatchSize, slots.CurrentCount), 1, 32);
                received = (await queue.ReceiveMessagesAsync(batch, _options.VisibilityTimeout, CancellationToken.None)).Value;
            }
            catch (RequestFailedException ex)
            {
                _logger.QueueReceiveFailed(queue.Name, ex);
                received = [];
            }

            if (received.Length == 0)
            {
                if (await WaitAsync(wakeUp, idle, stop))
                {
                    idle = TimeSpan.FromMilliseconds(10);
                    continue;
                }

                idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, _options.MaxPollingInterval.Ticks));
                continue;
            }

            idle = TimeSpan.FromMilliseconds(10);
            if (stop.IsCancellationRequested)
            {
                await Task.WhenAll(received.Select(m => TryReleaseAsync(queue, m, TimeSpan.Zero)));
                break;
            }

            foreach (var message in received)
            {
                await slots.WaitAsync(CancellationToken.None);
                var task = Task.Run(async () =>
                {
                    try
                    {
                        await HandleAsync(queue, poison, message, handler, stop);
                    }
                    finally
                    {
                        slots.Release();
                    }
                }, CancellationToken.None);
                inFlight[task] = 0;
                _ = task.ContinueWith(t => inFlight.TryRemove(t, out _), TaskScheduler.Default);
            }
        }

        await Task.WhenAll(inFlight.Keys);
    }

    private async Task HandleAsync(QueueClient queue, QueueClient poison, QueueMessage received, BusHandler handler, CancellationToken stop)
    {
        BusMessage message;
        try
        {
            message = await FromQueueTextAsync(received, stop);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            await MoveToPoisonAsync(queue, poison, received, received.PopReceipt, new PoisonMessageException($"the queue message is not this bus's envelope: {ex.Message}", ex));
            return;
        }

        var hidden = new KeptHidden(queue, received, _options.VisibilityTimeout, _logger);
        try
        {
            try
            {
                await handler(message, stop);
            }
            finally
            {
                await hidden.StopAsync();
            }

            await queue.DeleteMessageAsync(received.MessageId, hidden.PopReceipt, CancellationToken.None);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The consumer is stopping: make the message visible again at once, so nothing accepted waits.
            await TryReleaseAsync(queue, received, hidden.PopReceipt, TimeSpan.Zero);
        }
        catch (Exception ex)
        {
            if (received.DequeueCount >= _bus.MaxDeliveryCount || ex is PoisonMessageException)
            {
                await MoveToPoisonAsync(queue, poison, received, hidden.PopReceipt, ex);
            }
            else
            {
                _logger.QueueMessageRetrying(message.Id, queue.Name, (int)received.DequeueCount, ex);
                await TryReleaseAsync(queue, received, hidden.PopReceipt, _bus.RetryDelay);
            }
        }
    }

    /// <summary>
    /// Keeps a message hidden while its handler runs: without it, a handler longer than the visibility timeout would
    /// see its message delivered to another consumer while it still works on it. Each renewal gives a new pop receipt.
    /// </summary>
    private sealed class KeptHidden
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _renewing;
        private string _popReceipt;

        public KeptHidden(QueueClient queue, QueueMessage received, TimeSpan visibility, ILogger logger)
        {
            _popReceipt = received.PopReceipt;
            _renewing = Task.Run(async () =>
            {
                var every = TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(1).Ticks, visibility.Ticks / 2));
                try
                {
                    while (true)
                    {
                        await Task.Delay(every, _stop.Token);

                        // Not canceled once sent: the service may have taken it, and then only its answer has the
                        // pop receipt the message can still be deleted with.
                        var renewed = await queue.UpdateMessageAsync(received.MessageId, PopReceipt, visibilityTimeout: visibility, cancellationToken: CancellationToken.None);
                        Volatile.Write(ref _popReceipt, renewed.Value.PopReceipt);
                    }
                }
                catch (OperationCanceledException)
                {
                    // The handler is done.
                }
                catch (RequestFailedException ex)
                {
                    // It will reappear when its timeout ends, as if this consumer had died: late, not lost.
                    logger.QueueMessageNotKeptHidden(received.MessageId, queue.Name, ex);
                }
            });
        }

        public string PopReceipt => Volatile.Read(ref _popReceipt);

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _renewing;
            _stop.Dispose();
        }
    }

    // The poison queue keeps the message as it was, with why and when it got there (an unreadable one as its raw text).
    private async Task MoveToPoisonAsync(QueueClient queue, QueueClient poison, QueueMessage received, string popReceipt, Exception error)
    {
        var deliveries = (int)received.DequeueCount;
        var reason = DeadLetterReason.Of(error, deliveries);
        _logger.QueueMessagePoisoned(received.MessageId, queue.Name, deliveries, reason);
        var text = received.Body.ToString();
        JsonObject envelope;
        try
        {
            envelope = JsonNode.Parse(text) as JsonObject ?? throw new JsonException("not an object");
        }
        catch (JsonException)
        {
            envelope = new JsonObject { ["id"] = received.MessageId, ["raw"] = text };
        }

        envelope[PoisonReason] = reason;
        envelope[PoisonDeliveries] = deliveries;
        envelope[PoisonAt] = DateTimeOffset.UtcNow;
        await poison.SendMessageAsync(envelope.ToJsonString(), CancellationToken.None);
        await queue.DeleteMessageAsync(received.MessageId, popReceipt, CancellationToken.None);
    }

    private const string PoisonReason = "dead_letter_reason";
    private const string PoisonDeliveries = "dead_letter_deliveries";
    private const string PoisonAt = "dead_lettered_at";

    public async Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(string queue, int limit, CancellationToken cancellationToken)
    {
        var found = new List<DeadLetter>();
        await ScanPoisonAsync(queue, (message, envelope) =>
        {
            found.Add(new DeadLetter(queue, envelope?["id"]?.GetValue<string>() ?? message.MessageId,
                envelope?[PoisonReason]?.GetValue<string>() ?? "moved to the poison queue (no reason recorded)",
                envelope?[PoisonDeliveries] is JsonValue d && d.TryGetValue<int>(out var n) ? n : (int)message.DequeueCount,
                envelope?[PoisonAt] is JsonValue at && at.TryGetValue<DateTimeOffset>(out var when) ? when : message.InsertedOn ?? DateTimeOffset.MinValue));
            return Task.FromResult(false);
        }, limit, cancellationToken);
        return found;
    }

    public async Task<int> ReplayDeadLettersAsync(string queue, string? messageId, CancellationToken cancellationToken)
    {
        var target = await QueueAsync(QueueName(queue));
        var replayed = 0;
        await ScanPoisonAsync(queue, async (_, envelope) =>
        {
            if (envelope is null || envelope.ContainsKey("raw") || (messageId is not null && envelope["id"]?.GetValue<string>() != messageId))
            {
                return false;
            }

            envelope.Remove(PoisonReason);
            envelope.Remove(PoisonDeliveries);
            envelope.Remove(PoisonAt);
            await target.SendMessageAsync(envelope.ToJsonString(), cancellationToken);
            replayed++;
            return true;
        }, int.MaxValue, cancellationToken);
        return replayed;
    }

    /// <summary>
    /// Approximate, as the service counts: the depth is the queue's approximate message count (everything not deleted:
    /// waiting, delayed or being handled). The oldest is the first message a peek sees, and a peek sees only visible
    /// messages, so never one a consumer holds; the service keeps a queue roughly, not strictly, in order.
    /// </summary>
    public async Task<QueueBacklog> GetBacklogAsync(string queue, CancellationToken cancellationToken)
    {
        // Not through QueueAsync: watching a queue should not create it.
        var client = _service.GetQueueClient(QueueName(queue));
        try
        {
            var depth = (await client.GetPropertiesAsync(cancellationToken)).Value.ApproximateMessagesCount;
            var first = (await client.PeekMessagesAsync(1, cancellationToken)).Value.FirstOrDefault();
            return new QueueBacklog(depth, first is null ? null : WaitingSince(first));
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return QueueBacklog.Empty; // nothing was ever sent to it
        }
    }

    /// <summary>
    /// Since when a visible message has waited: its insertion, or for a delayed one when it fell due (the service's
    /// insertion time is its sending; the envelope says when it falls due).
    /// </summary>
    public static DateTimeOffset? WaitingSince(PeekedMessage message)
    {
        DateTimeOffset? due = null;
        try
        {
            if (JsonNode.Parse(message.Body.ToString()) is JsonObject envelope && envelope[DueField] is JsonValue value && value.TryGetValue<DateTimeOffset>(out var at))
            {
                due = at;
            }
        }
        catch (JsonException)
        {
            // Not this bus's envelope: its insertion time is all there is.
        }

        return (message.InsertedOn, due) switch
        {
            ({ } inserted, { } fellDue) => inserted > fellDue ? inserted : fellDue,
            (var inserted, var fellDue) => inserted ?? fellDue,
        };
    }

    private const string DueField = "due";

    // Reads the poison queue once through: each message is hidden while the pass lasts, so none is seen twice; the
    // visitor says which to delete, and the rest are made visible again at the end.
    private async Task ScanPoisonAsync(string queue, Func<QueueMessage, JsonObject?, Task<bool>> visit, int limit, CancellationToken cancellationToken)
    {
        var poison = await QueueAsync(_names.PoisonQueue(queue));
        var kept = new List<QueueMessage>();
        try
        {
            var seen = 0;
            while (seen < limit)
            {
                var batch = (await poison.ReceiveMessagesAsync(Math.Min(32, limit - seen), TimeSpan.FromMinutes(1), cancellationToken)).Value;
                if (batch.Length == 0)
                {
                    break;
                }

                foreach (var message in batch)
                {
                    seen++;
                    JsonObject? envelope;
                    try
                    {
                        envelope = JsonNode.Parse(message.Body.ToString()) as JsonObject;
                    }
                    catch (JsonException)
                    {
                        envelope = null;
                    }

                    if (await visit(message, envelope))
                    {
                        await poison.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken);
                    }
                    else
                    {
                        kept.Add(message);
                    }
                }
            }
        }
        finally
        {
            await Task.WhenAll(kept.Select(m => TryReleaseAsync(poison, m, m.PopReceipt, TimeSpan.Zero)));
        }
    }

    private Task TryReleaseAsync(QueueClient queue, QueueMessage received, TimeSpan delay) => TryReleaseAsync(queue, received, received.PopReceipt, delay);

    private async Task TryReleaseAsync(QueueClient queue, QueueMessage received, string popReceipt, TimeSpan delay)
    {
        try
        {
            await queue.UpdateMessageAsync(received.MessageId, popReceipt, visibilityTimeout: delay, cancellationToken: CancellationToken.None);
        }
        catch (RequestFailedException ex)
        {
            // The message stays hidden until its visibility timeout ends, then comes back: late, not lost.
            _logger.QueueMessageNotReleased(received.MessageId, queue.Name, ex);
        }
    }

    // The queue carries the message id and the body as text; a body too big for a queue message is put in a blob.
    private async Task<string> ToQueueTextAsync(BusMessage message, CancellationToken cancellationToken)
    {
        var envelope = new JsonObject { ["id"] = message.Id };
        if (message.Delay > TimeSpan.Zero)
        {
            envelope[DueField] = DateTimeOffset.UtcNow + message.Delay;
        }
        if (message.Body.Length <= MaxInlineBytes)
        {
            envelope["body"] = JsonNode.Parse(message.Body.Span);
        }
        else
        {
            envelope["blob"] = await _blobs.StoreAsync(System.Text.Encoding.UTF8.GetString(message.Body.Span), $"{Guid.NewGuid():N}.json", cancellationToken);
        }

        return envelope.ToJsonString();
    }

    private Task<BusMessage> FromQueueTextAsync(QueueMessage received, CancellationToken cancellationToken) =>
        DecodeAsync(received.Body.ToString(), (int)received.DequeueCount, cancellationToken);

    /// <summary>
    /// Reads a message as this bus wrote it to the queue (for consumers that receive the raw text, such as the
    /// Functions queue trigger); a body kept in a blob is fetched.
    /// </summary>
    public async Task<BusMessage> DecodeAsync(string queueText, int dequeueCount, CancellationToken cancellationToken)
    {
        var envelope = JsonNode.Parse(queueText) as JsonObject
            ?? throw new InvalidOperationException("the queue message is not a JSON object");
        var id = envelope["id"]?.GetValue<string>() ?? throw new InvalidOperationException("the queue message has no id");
        var body = envelope["blob"] is JsonValue blob
            ? await _blobs.LoadAsync(blob.GetValue<string>(), cancellationToken) ?? ""
            : envelope["body"]?.ToJsonString() ?? throw new InvalidOperationException("the queue message has no body");
        return new BusMessage(id, System.Text.Encoding.UTF8.GetBytes(body), dequeueCount);
    }

    private Task<QueueClient> QueueAsync(string name) =>
        _queues.GetOrAdd(name, n => new Lazy<Task<QueueClient>>(async () =>
        {
            var client = _service.GetQueueClient(n);
            await client.CreateIfNotExistsAsync();
            return client;
        })).Value;

    // True when woken by a local send before the delay ran out.
    private static async Task<bool> WaitAsync(SemaphoreSlim wakeUp, TimeSpan delay, CancellationToken stop)
    {
        try
        {
            return await wakeUp.WaitAsync(delay, stop);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private sealed class Subscription(CancellationTokenSource stop, Task loop) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            await loop;
            stop.Dispose();
        }
    }
}
