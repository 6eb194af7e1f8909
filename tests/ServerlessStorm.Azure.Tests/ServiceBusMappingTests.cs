using System.Text;
using Azure.Messaging.ServiceBus;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;

using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>
/// The Service Bus transport cannot run here (no emulator, no namespace), so its message mapping and settlement are
/// tested through the SDK's model factory and a receiver that records the settle calls the processor would make.
/// </summary>
public sealed class ServiceBusMappingTests
{
    private static readonly TriggerInstance Instance = new("delivery-7", CoreTriggers.Webhook, new() { ["url"] = "hello" },
        System.Text.Json.Nodes.JsonNode.Parse("""{"body":{"name":"storm"}}"""), DateTimeOffset.UnixEpoch, "trace-7");

    [Fact]
    public void Outgoing_CarriesTheCloudEventWithTheTriggerInstanceIdAsMessageId()
    {
        var bus = StormEvents.Encode(Instance);

        var message = ServiceBusMessageBus.ToServiceBusMessage(bus);

        Assert.Equal("delivery-7", message.MessageId);
        Assert.StartsWith("application/cloudevents+json", message.ContentType, StringComparison.Ordinal);
        Assert.Equal(bus.Body.ToArray(), message.Body.ToArray());
    }

    [Fact]
    public void Outgoing_Delay_IsAScheduledEnqueueTime()
    {
        var message = ServiceBusMessageBus.ToServiceBusMessage(StormEvents.Encode(Instance) with { Delay = TimeSpan.FromMinutes(2) });

        Assert.InRange(message.ScheduledEnqueueTime - DateTimeOffset.UtcNow, TimeSpan.FromMinutes(1.9), TimeSpan.FromMinutes(2));
    }

    [Fact]
    public void Incoming_MapsBackToTheSameTriggerInstance()
    {
        var bus = StormEvents.Encode(Instance);
        var received = ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromBytes(bus.Body), messageId: "delivery-7", deliveryCount: 3);

        var message = ServiceBusMessageBus.FromServiceBusMessage(received);
        var decoded = StormEvents.DecodeTriggerInstance(message);

        Assert.Equal(3, message.DeliveryCount);
        Assert.Equal(Instance.Id, decoded.Id);
        Assert.Equal(Instance.TraceTag, decoded.TraceTag);
    }

    [Theory]
    [InlineData(1, false, "complete")]
    [InlineData(1, true, "abandon")]
    [InlineData(5, true, "deadletter")]
    public async Task Handler_SettlesTheMessageByItsOutcome(int deliveryCount, bool fails, string expected)
    {
        var receiver = new RecordingReceiver();
        var received = ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromString("{}"), messageId: "m", deliveryCount: deliveryCount);
        var args = new ProcessMessageEventArgs(received, receiver, CancellationToken.None);

        await ServiceBusMessageBus.HandleAsync(args, (_, _) => fails ? throw new InvalidOperationException("boom") : Task.CompletedTask, 5, NullLogger.Instance);

        Assert.Equal(expected, Assert.Single(receiver.Settlements));
        if (expected == "deadletter")
        {
            Assert.Equal("failed 5 deliveries; last error InvalidOperationException: boom", receiver.DeadLetterDescription);
        }
    }

    [Fact]
    public async Task UnreadableMessage_IsDeadLetteredOnItsFirstDelivery_AsUnreadable()
    {
        var receiver = new RecordingReceiver();
        var received = ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromString("not an event"), messageId: "m", deliveryCount: 1);
        var args = new ProcessMessageEventArgs(received, receiver, CancellationToken.None);

        await ServiceBusMessageBus.HandleAsync(args, (m, _) => Task.FromResult(StormEvents.DecodeTriggerInstance(m)), 5, NullLogger.Instance);

        Assert.Equal("deadletter", Assert.Single(receiver.Settlements));
        Assert.StartsWith("unreadable on delivery 1: message m is not a CloudEvents 1.0 JSON event", receiver.DeadLetterDescription, StringComparison.Ordinal);
    }

    [Fact]
    public void TheTraceContext_TravelsAsApplicationPropertiesAndInsideTheEvent_ToTheReceiver()
    {
        using var spans = new SpanRecorder();
        ServiceBusMessage sent;
        string traceParent;
        using (var dispatch = ServerlessStorm.Engine.Diagnostics.StormTracing.Source.StartActivity("test dispatch", System.Diagnostics.ActivityKind.Producer)!)
        {
            traceParent = dispatch.Id!;
            sent = ServiceBusMessageBus.ToServiceBusMessage(StormEvents.Encode(Instance));
        }

        Assert.Equal(traceParent, sent.ApplicationProperties[ServiceBusMessageBus.TraceParentProperty]);
        var received = ServiceBusModelFactory.ServiceBusReceivedMessage(body: sent.Body, messageId: sent.MessageId, deliveryCount: 2, properties: sent.ApplicationProperties);
        Assert.Equal(traceParent, StormEvents.DecodeTriggerInstance(ServiceBusMessageBus.FromServiceBusMessage(received)).Trace!.TraceParent);
    }

    [Fact]
    public void AReplayedMessage_IsSentUnderAnIdDuplicateDetectionDoesNotDrop_WhateverTimesItIsReplayed()
    {
        var once = ServiceBusMessageBus.ReplayId("ti-1");
        var twice = ServiceBusMessageBus.ReplayId(once);

        Assert.NotEqual("ti-1", once);
        Assert.StartsWith("ti-1.replayed-", once, StringComparison.Ordinal);
        Assert.StartsWith("ti-1.replayed-", twice, StringComparison.Ordinal);
        Assert.Single(twice.Split(".replayed-")[1..]);
    }

    [Fact]
    public void DeadLetteredMessage_IsListedWithTheDescriptionItWasGiven()
    {
        var message = ServiceBusModelFactory.ServiceBusReceivedMessage(messageId: "ti-1", deliveryCount: 5,
            properties: new Dictionary<string, object> { ["DeadLetterReason"] = "HandlerFailed", ["DeadLetterErrorDescription"] = "failed 5 deliveries; last error X: y" });
        var letter = ServiceBusMessageBus.ToDeadLetter("trigger-instances")(message);
        Assert.Equal(("trigger-instances", "ti-1", "failed 5 deliveries; last error X: y", 5), (letter.Queue, letter.MessageId, letter.Reason, letter.Deliveries));
    }

    [Fact]
    public async Task Backlog_CountsEveryPeekedMessage_AndDatesTheOldestActiveOne_FromWhenItBecameActive()
    {
        var now = DateTimeOffset.UtcNow;
        var queue = new PeekableQueue(
        [
            Peeked(1, enqueued: now.AddHours(-2), scheduledFor: now.AddHours(1), ServiceBusMessageState.Scheduled), // a timer's next occurrence
            Peeked(2, enqueued: now.AddMinutes(-30), scheduledFor: now.AddMinutes(-1)),                           // was delayed, due a minute ago
            Peeked(3, enqueued: now.AddMinutes(-5)),
            Peeked(4, enqueued: now.AddMinutes(-2)),
        ]);

        var backlog = await ServiceBusMessageBus.PeekBacklogAsync(queue, 1000, CancellationToken.None);

        Assert.Equal(new QueueBacklog(4, now.AddMinutes(-5)), backlog);
    }

    [Fact]
    public async Task Backlog_PeeksInPagesFromTheLastSequenceNumber_AndStopsCountingAtTheLimit()
    {
        var now = DateTimeOffset.UtcNow;
        var queue = new PeekableQueue([.. Enumerable.Range(1, 1300).Select(i => Peeked(i, enqueued: now.AddSeconds(i - 2000)))]);

        var backlog = await ServiceBusMessageBus.PeekBacklogAsync(queue, 1000, CancellationToken.None);

        Assert.Equal(new QueueBacklog(1000, now.AddSeconds(-1999)), backlog);
        Assert.Equal([(250, null), (250, 251L), (250, 501L), (250, 751L)], queue.Peeks);
    }

    [Fact]
    public async Task Backlog_OfAnEmptyQueue_IsEmpty() =>
        Assert.Equal(QueueBacklog.Empty, await ServiceBusMessageBus.PeekBacklogAsync(new PeekableQueue([]), 1000, CancellationToken.None));

    private static ServiceBusReceivedMessage Peeked(long sequenceNumber, DateTimeOffset enqueued, DateTimeOffset scheduledFor = default,
        ServiceBusMessageState state = ServiceBusMessageState.Active) =>
        ServiceBusModelFactory.ServiceBusReceivedMessage(messageId: $"m{sequenceNumber}", sequenceNumber: sequenceNumber, enqueuedTime: enqueued,
            scheduledEnqueueTime: scheduledFor, serviceBusMessageState: state);

    /// <summary>
    /// A queue's messages as a peek returns them, by the service's documented rules: in sequence order from the
    /// sequence number asked for, at most as many as asked, active, scheduled and locked ones alike.
    /// </summary>
    private sealed class PeekableQueue(IReadOnlyList<ServiceBusReceivedMessage> messages) : ServiceBusReceiver
    {
        public List<(int MaxMessages, long? From)> Peeks { get; } = [];

        public override Task<IReadOnlyList<ServiceBusReceivedMessage>> PeekMessagesAsync(int maxMessages, long? fromSequenceNumber = null, CancellationToken cancellationToken = default)
        {
            Peeks.Add((maxMessages, fromSequenceNumber));
            return Task.FromResult<IReadOnlyList<ServiceBusReceivedMessage>>([.. messages.Where(m => m.SequenceNumber >= (fromSequenceNumber ?? 0)).Take(maxMessages)]);
        }
    }

    private sealed class RecordingReceiver : ServiceBusReceiver
    {
        public List<string> Settlements { get; } = [];

        public string? DeadLetterDescription { get; private set; }

        public override Task CompleteMessageAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default)
        {
            Settlements.Add("complete");
            return Task.CompletedTask;
        }

        public override Task AbandonMessageAsync(ServiceBusReceivedMessage message, IDictionary<string, object>? propertiesToModify = null, CancellationToken cancellationToken = default)
        {
            Settlements.Add("abandon");
            return Task.CompletedTask;
        }

        public override Task DeadLetterMessageAsync(ServiceBusReceivedMessage message, string deadLetterReason, string? deadLetterErrorDescription = null, CancellationToken cancellationToken = default)
        {
            Settlements.Add("deadletter");
            DeadLetterDescription = deadLetterErrorDescription;
            return Task.CompletedTask;
        }
    }
}
