using System.Collections.Concurrent;
using Azure.Messaging.ServiceBus;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Azure.Messaging;

/// <summary>Connection of the Service Bus transport (configuration section <c>ServiceBus</c>).</summary>
public sealed class ServiceBusOptions
{
    public const string Section = "ServiceBus";

    /// <summary>A connection string with a key; not used when <see cref="FullyQualifiedNamespace"/> is set.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>The namespace (<c>name.servicebus.windows.net</c>), reached with a managed identity: Azure Functions' <c>ServiceBus__fullyQualifiedNamespace</c>.</summary>
    public string? FullyQualifiedNamespace { get; set; }

    /// <summary><c>managedidentity</c>, with <see cref="ClientId"/> for a user-assigned identity (<c>ServiceBus__credential</c>, <c>ServiceBus__clientId</c>).</summary>
    public string? Credential { get; set; }

    public string? ClientId { get; set; }

    /// <summary>The client these settings describe: by identity when the namespace is named, else by connection string.</summary>
    public ServiceBusClient CreateClient(global::Azure.Core.TokenCredential? credential = null) => string.IsNullOrEmpty(FullyQualifiedNamespace)
        ? new ServiceBusClient(ConnectionString)
        : new ServiceBusClient(FullyQualifiedNamespace, credential ?? AzureIdentity.Credential(Credential, ClientId));

    /// <summary>Messages fetched ahead per processor.</summary>
    public int PrefetchCount { get; set; } = 16;

    /// <summary>
    /// The most messages a backlog sample peeks per queue: the depth it reports stops there (the app's identity may
    /// send and receive, not read the queue's counts through the administration API).
    /// </summary>
    public int BacklogPeekLimit { get; set; } = 1000;
}

/// <summary>
/// The bus on Azure Service Bus queues (one per bus queue, same names): messages are settled by hand — completed
/// after the handler succeeds, abandoned for redelivery when it throws, dead-lettered with the error after
/// <see cref="BusOptions.MaxDeliveryCount"/> deliveries.
/// </summary>
public sealed class ServiceBusMessageBus : IMessageBus, IAsyncDisposable
{
    public const string ContentType = "application/cloudevents+json; charset=utf-8";

    private readonly ServiceBusClient _client;
    private readonly ServiceBusOptions _options;
    private readonly BusOptions _bus;
    private readonly ILogger<ServiceBusMessageBus> _logger;
    private readonly ConcurrentDictionary<string, ServiceBusSender> _senders = new(StringComparer.Ordinal);

    // The client is the composition's one (the Python launcher talks over the same connection).
    public ServiceBusMessageBus(ServiceBusClient client, IOptions<ServiceBusOptions> options, IOptions<BusOptions> bus, ILogger<ServiceBusMessageBus> logger)
        : this(client, options.Value, bus.Value, logger)
    {
    }

    internal ServiceBusMessageBus(ServiceBusClient client, ServiceBusOptions options, BusOptions bus, ILogger<ServiceBusMessageBus> logger)
    {
        _client = client;
        _options = options;
        _bus = bus;
        _logger = logger;
    }

    public Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken) =>
        _senders.GetOrAdd(queue, _client.CreateSender).SendMessageAsync(ToServiceBusMessage(message), cancellationToken);

    public async Task<IAsyncDisposable> SubscribeAsync(string queue, BusHandler handler, CancellationToken cancellationToken)
    {
        var processor = _client.CreateProcessor(queue, new ServiceBusProcessorOptions
        {
            AutoCompleteMessages = false,

            // The lock is renewed for as long as the handler runs (the default stops at 5 minutes, after which a
            // long action's message would go to another consumer while it still runs); an action's own timeout
            // bounds the handler.
            MaxAutoLockRenewalDuration = Timeout.InfiniteTimeSpan,
            MaxConcurrentCalls = Math.Max(1, _bus.Concurrency),
            PrefetchCount = _options.PrefetchCount,
        });
        processor.ProcessMessageAsync += args => HandleAsync(args, handler, _bus.MaxDeliveryCount, _logger);
        processor.ProcessErrorAsync += args =>
        {
            _logger.ServiceBusProcessorFailed(args.EntityPath, args.ErrorSource.ToString(), args.Exception);
            return Task.CompletedTask;
        };
        await processor.StartProcessingAsync(cancellationToken);
        return processor;
    }

    public static ServiceBusMessage ToServiceBusMessage(BusMessage message)
    {
        var sent = new ServiceBusMessage(message.Body)
        {
            MessageId = message.Id,
            ContentType = ContentType,
            ScheduledEnqueueTime = message.Delay > TimeSpan.Zero ? DateTimeOffset.UtcNow + message.Delay : default,
        };

        // The event inside carries the trace context too; as properties, Service Bus tooling and the portal see it.
        if (ServerlessStorm.Engine.Diagnostics.StormTracing.Current() is { } trace)
        {
            sent.ApplicationProperties[TraceParentProperty] = trace.TraceParent;
            if (trace.TraceState is { Length: > 0 } state)
            {
                sent.ApplicationProperties[TraceStateProperty] = state;
            }
        }

        return sent;
    }

    public const string TraceParentProperty = "traceparent";

    public const string TraceStateProperty = "tracestate";

    public static BusMessage FromServiceBusMessage(ServiceBusReceivedMessage message) =>
        new(message.MessageId, message.Body.ToMemory(), message.DeliveryCount);

    /// <summary>
    /// Runs the handler for one received message and settles it by the outcome: completed when it succeeds, abandoned
    /// for redelivery when it throws, dead-lettered with the reason on its last delivery or when it cannot be read.
    /// The processor here and the Function app's Service Bus triggers both settle through this.
    /// </summary>
    public static async Task HandleAsync(ServiceBusReceivedMessage received, string queue, ServiceBusSettlement settle, BusHandler handler,
        int maxDeliveryCount, ILogger logger, CancellationToken cancellationToken)
    {
        var message = FromServiceBusMessage(received);
        try
        {
            await handler(message, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await settle.Abandon();
            return;
        }
        catch (Exception ex)
        {
            if (message.DeliveryCount >= maxDeliveryCount || ex is PoisonMessageException)
            {
                logger.ServiceBusMessageDeadLettered(message.Id, queue, message.DeliveryCount, ex);
                await settle.DeadLetter(ex is PoisonMessageException ? "Unreadable" : "HandlerFailed", DeadLetterReason.Of(ex, message.DeliveryCount));
            }
            else
            {
                logger.ServiceBusMessageAbandoned(message.Id, queue, message.DeliveryCount, ex);
                await settle.Abandon();
            }

            return;
        }

        await settle.Complete();
    }

    internal static Task HandleAsync(ProcessMessageEventArgs args, BusHandler handler, int maxDeliveryCount, ILogger logger) =>
        HandleAsync(args.Message, args.EntityPath, new ServiceBusSettlement(
            () => args.CompleteMessageAsync(args.Message, CancellationToken.None),
            () => args.AbandonMessageAsync(args.Message, cancellationToken: CancellationToken.None),
            (reason, description) => args.DeadLetterMessageAsync(args.Message, reason, description, CancellationToken.None)),
            handler, maxDeliveryCount, logger, args.CancellationToken);

    public async Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(string queue, int limit, CancellationToken cancellationToken)
    {
        await using var receiver = _client.CreateReceiver(queue, new ServiceBusReceiverOptions { SubQueue = SubQueue.DeadLetter });
        var found = new List<DeadLetter>();
        long? from = null;
        while (found.Count < limit)
        {
            var page = await receiver.PeekMessagesAsync(Math.Min(250, limit - found.Count), from, cancellationToken);
            if (page.Count == 0)
            {
                break;
            }

            found.AddRange(page.Select(ToDeadLetter(queue)));
            from = page[^1].SequenceNumber + 1;
        }

        return found;
    }

    /// <summary>A dead-lettered message as the list shows it: the description we gave it, else the broker's reason.</summary>
    public static Func<ServiceBusReceivedMessage, DeadLetter> ToDeadLetter(string queue) => m => new DeadLetter(queue, m.MessageId,
        m.DeadLetterErrorDescription ?? m.DeadLetterReason ?? "dead-lettered (no reason recorded)", m.DeliveryCount, m.EnqueuedTime);

    /// <summary>
    /// By peeking, up to <see cref="ServiceBusOptions.BacklogPeekLimit"/> messages: the depth is capped there. A peek
    /// sees active, scheduled (delayed) and locked messages alike and cannot tell a locked one, so the oldest active
    /// message may be one a consumer is handling: a long action's request counts as waiting while it runs.
    /// </summary>
    public async Task<QueueBacklog> GetBacklogAsync(string queue, CancellationToken cancellationToken)
    {
        await using var receiver = _client.CreateReceiver(queue);
        return await PeekBacklogAsync(receiver, _options.BacklogPeekLimit, cancellationToken);
    }

    /// <summary>The backlog of the queue <paramref name="receiver"/> reads, from its messages peeked in sequence order up to <paramref name="limit"/>.</summary>
    public static async Task<QueueBacklog> PeekBacklogAsync(ServiceBusReceiver receiver, int limit, CancellationToken cancellationToken)
    {
        var depth = 0;
        DateTimeOffset? oldest = null;
        long? from = null;
        while (depth < limit)
        {
            var page = await receiver.PeekMessagesAsync(Math.Min(250, limit - depth), from, cancellationToken);
            if (page.Count == 0)
            {
                break;
            }

            foreach (var message in page)
            {
                depth++;
                if (message.State == ServiceBusMessageState.Active && WaitingSince(message) is var since && (oldest is null || since < oldest))
                {
                    oldest = since;
                }
            }

            from = page[^1].SequenceNumber + 1;
        }

        return new QueueBacklog(depth, oldest);
    }

    // A scheduled message is active from its scheduled time on: it waits from then, not from its sending.
    private static DateTimeOffset WaitingSince(ServiceBusReceivedMessage message) =>
        message.ScheduledEnqueueTime > message.EnqueuedTime ? message.ScheduledEnqueueTime : message.EnqueuedTime;

    public async Task<int> ReplayDeadLettersAsync(string queue, string? messageId, CancellationToken cancellationToken)
    {
        await using var receiver = _client.CreateReceiver(queue, new ServiceBusReceiverOptions { SubQueue = SubQueue.DeadLetter });
        var sender = _senders.GetOrAdd(queue, _client.CreateSender);
        var kept = new List<ServiceBusReceivedMessage>();
        var replayed = 0;
        try
        {
            while (true)
            {
                // Locked while this pass lasts, so none is seen twice; the ones not replayed are abandoned at the end.
                var batch = await receiver.ReceiveMessagesAsync(100, TimeSpan.FromSeconds(1), cancellationToken);
                if (batch.Count == 0)
                {
                    break;
                }

                foreach (var message in batch)
                {
                    if (messageId is not null && message.MessageId != messageId)
                    {
                        kept.Add(message);
                        continue;
                    }

                    await sender.SendMessageAsync(new ServiceBusMessage(message.Body) { MessageId = ReplayId(message.MessageId), ContentType = message.ContentType }, cancellationToken);
                    await receiver.CompleteMessageAsync(message, cancellationToken);
                    replayed++;
                }
            }
        }
        finally
        {
            foreach (var message in kept)
            {
                await receiver.AbandonMessageAsync(message, cancellationToken: CancellationToken.None);
            }
        }

        return replayed;
    }

    /// <summary>
    /// The id a replayed message is sent under: the original's with a replay mark, since duplicate detection would
    /// drop a message sent again under its first id (the event inside, and its id, are unchanged).
    /// </summary>
    public static string ReplayId(string messageId)
    {
        var original = messageId.Split(ReplayMark)[0];
        return $"{original}{ReplayMark}{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}";
    }

    private const string ReplayMark = ".replayed-";

    public async ValueTask DisposeAsync()
    {
        foreach (var sender in _senders.Values)
        {
            await sender.DisposeAsync();
        }

        await _client.DisposeAsync();
    }
}

/// <summary>How one received message is settled: by a processor's event arguments, or by the Functions host's message actions.</summary>
public sealed record ServiceBusSettlement(Func<Task> Complete, Func<Task> Abandon, Func<string, string, Task> DeadLetter);
