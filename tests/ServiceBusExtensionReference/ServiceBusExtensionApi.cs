// The documented API of Microsoft.Azure.Functions.Worker.Extensions.ServiceBus 5.x that the Function app uses: the
// trigger attribute and the message settlement actions, with the same names, namespaces and signatures. Bodies
// throw: this assembly exists to be compiled against, never to run.
using Azure.Messaging.ServiceBus;
using Microsoft.Azure.Functions.Worker.Extensions.Abstractions;

namespace Microsoft.Azure.Functions.Worker;

public sealed class ServiceBusTriggerAttribute : TriggerBindingAttribute, ISupportCardinality
{
    public ServiceBusTriggerAttribute(string queueName) => QueueName = queueName;

    public ServiceBusTriggerAttribute(string topicName, string subscriptionName) => (TopicName, SubscriptionName) = (topicName, subscriptionName);

    public string? QueueName { get; }

    public string? TopicName { get; }

    public string? SubscriptionName { get; }

    public string? Connection { get; set; }

    public bool IsSessionsEnabled { get; set; }

    public bool AutoCompleteMessages { get; set; }

    // The SDK's metadata generator reads a cardinality property's default from this attribute.
    [DefaultValue(false)]
    public bool IsBatched { get; set; }

    Cardinality ISupportCardinality.Cardinality
    {
        get => IsBatched ? Cardinality.Many : Cardinality.One;
        set => IsBatched = value == Cardinality.Many;
    }
}

public class ServiceBusMessageActions
{
    protected ServiceBusMessageActions()
    {
    }

    public virtual Task CompleteMessageAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("compile-only reference");

    public virtual Task AbandonMessageAsync(ServiceBusReceivedMessage message, IDictionary<string, object>? properties, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("compile-only reference");

    public virtual Task DeadLetterMessageAsync(ServiceBusReceivedMessage message, Dictionary<string, object>? propertiesToModify = default,
        string? deadLetterReason = default, string? deadLetterErrorDescription = default, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("compile-only reference");

    public virtual Task DeferMessageAsync(ServiceBusReceivedMessage message, IDictionary<string, object>? propertiesToModify = default, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("compile-only reference");
}
