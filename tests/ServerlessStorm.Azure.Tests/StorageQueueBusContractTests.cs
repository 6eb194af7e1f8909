using Azure.Storage.Queues;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>The shared transport suite on Azure Storage Queues in Azurite.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class StorageQueueBusContractTests(AzuriteFixture azurite) : BusContractTests
{
    protected override Task<IMessageBus> CreateBusAsync()
    {
        var storage = azurite.NewStorageOptions();
        var queues = new StorageQueueOptions { VisibilityTimeout = TimeSpan.FromSeconds(30), MaxPollingInterval = TimeSpan.FromMilliseconds(100) };
        return Task.FromResult<IMessageBus>(new StorageQueueMessageBus(Options.Create(storage), Options.Create(FastRetries), Options.Create(queues), NullLogger<StorageQueueMessageBus>.Instance));
    }

    [Fact]
    public async Task ConsumerKilledWithoutCleanup_MessageComesBackAfterItsVisibilityTimeout()
    {
        var storage = azurite.NewStorageOptions();
        var shortVisibility = new StorageQueueOptions { VisibilityTimeout = TimeSpan.FromSeconds(2), MaxPollingInterval = TimeSpan.FromMilliseconds(100) };
        var bus = new StorageQueueMessageBus(Options.Create(storage), Options.Create(FastRetries), Options.Create(shortVisibility), NullLogger<StorageQueueMessageBus>.Instance);
        await bus.PublishAsync("crash", Message("survivor"), CancellationToken.None);

        // Receive the message as a consumer would, then vanish without deleting or releasing it (a crash).
        var raw = new QueueClient(storage.ConnectionString, bus.QueueName("crash"));
        var taken = await raw.ReceiveMessagesAsync(1, TimeSpan.FromSeconds(2));
        Assert.Single(taken.Value);

        var received = new TaskCompletionSource<BusMessage>();
        await using (await bus.SubscribeAsync("crash", (m, _) =>
        {
            received.TrySetResult(m);
            return Task.CompletedTask;
        }, CancellationToken.None))
        {
            var message = await received.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal("survivor", message.Id);
            Assert.Equal(2, message.DeliveryCount);
        }
    }

    [Fact]
    public async Task AHandlerLongerThanTheVisibilityTimeout_KeepsItsMessage_FromOtherConsumers()
    {
        var storage = azurite.NewStorageOptions();
        var shortVisibility = new StorageQueueOptions { VisibilityTimeout = TimeSpan.FromSeconds(2), MaxPollingInterval = TimeSpan.FromMilliseconds(100) };
        StorageQueueMessageBus Consumer() => new(Options.Create(storage), Options.Create(FastRetries), Options.Create(shortVisibility), NullLogger<StorageQueueMessageBus>.Instance);
        var bus = Consumer();
        await bus.PublishAsync("long", Message("long-1"), CancellationToken.None);

        var deliveries = 0;
        var done = new TaskCompletionSource();
        async Task HandleAsync(BusMessage message, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref deliveries) == 1)
            {
                await Task.Delay(TimeSpan.FromSeconds(6), cancellationToken); // three visibility timeouts
                done.TrySetResult();
            }
        }

        await using (await bus.SubscribeAsync("long", HandleAsync, CancellationToken.None))
        await using (await Consumer().SubscribeAsync("long", HandleAsync, CancellationToken.None))
        {
            await done.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await Task.Delay(TimeSpan.FromSeconds(3)); // a redelivery would come within one more timeout
        }

        Assert.Equal(1, deliveries);
        var properties = await new QueueClient(storage.ConnectionString, bus.QueueName("long")).GetPropertiesAsync();
        Assert.Equal(0, properties.Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task BodyLargerThanAQueueMessage_TravelsThroughBlobStorage()
    {
        var bus = await CreateBusAsync();
        var big = new string('x', 200_000);
        var body = System.Text.Encoding.UTF8.GetBytes($$"""{"big":"{{big}}"}""");
        await bus.PublishAsync("large", new BusMessage("large-1", body), CancellationToken.None);

        var received = new TaskCompletionSource<BusMessage>();
        await using (await bus.SubscribeAsync("large", (m, _) =>
        {
            received.TrySetResult(m);
            return Task.CompletedTask;
        }, CancellationToken.None))
        {
            var message = await received.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(body, message.Body.ToArray());
        }
    }
}
