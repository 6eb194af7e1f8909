using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Datastore;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class TableKeyValueStoreTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Datastore_RoundTripsInTableStorage_WithSecretsEncryptedAtRest()
    {
        var options = azurite.NewStorageOptions();
        var clock = new ManualTimeProvider(DateTimeOffset.UtcNow);
        var service = new KeyValueService(new TableKeyValueStore(Options.Create(options)),
            Options.Create(new DatastoreOptions { EncryptionKey = Convert.ToBase64String(new byte[32].Select((_, i) => (byte)(i * 7)).ToArray()) }), clock);

        await service.SetAsync("system", "app.url", "https://app.local", secret: false, ttl: null, CancellationToken.None);
        await service.SetAsync("system", "app.token", "canary-3141", secret: true, ttl: null, CancellationToken.None);
        await service.SetAsync("system", "other", "x", secret: false, ttl: TimeSpan.FromSeconds(30), CancellationToken.None);

        var raw = await new TableServiceClient(options.ConnectionString).GetTableClient(options.Prefix + "KeyValues").GetEntityAsync<TableEntity>("system", "app.token");
        Assert.DoesNotContain("canary-3141", raw.Value.GetString("Value"));
        Assert.Equal("canary-3141", (await service.GetAsync("system", "app.token", decrypt: true, CancellationToken.None))!.Value);
        Assert.Equal(["app.token", "app.url"], (await service.ListAsync("system", "app.", CancellationToken.None)).Select(r => r.Name));

        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(await service.GetAsync("system", "other", decrypt: false, CancellationToken.None));
        Assert.True(await service.DeleteAsync("system", "app.url", CancellationToken.None));
        Assert.False(await service.DeleteAsync("system", "app.url", CancellationToken.None));
    }

    [Fact]
    public async Task ClearingAnExpiredPair_LeavesAValueSetAgainMeanwhile()
    {
        // A reader saw the pair expired; before it cleared it, someone set it again: the new value must stay.
        var store = new TableKeyValueStore(Options.Create(azurite.NewStorageOptions()));
        var now = DateTimeOffset.UtcNow;
        await store.SetAsync(new KeyValueRecord("user", "session", "old", false, now.AddMinutes(-1)), CancellationToken.None);
        await store.SetAsync(new KeyValueRecord("user", "session", "new", false, now.AddHours(1)), CancellationToken.None);

        await store.DeleteIfExpiredAsync("user", "session", now, CancellationToken.None);
        Assert.Equal("new", (await store.GetAsync("user", "session", CancellationToken.None))!.Value);

        await store.SetAsync(new KeyValueRecord("user", "gone", "old", false, now.AddMinutes(-1)), CancellationToken.None);
        await store.DeleteIfExpiredAsync("user", "gone", now, CancellationToken.None);
        Assert.Null(await store.GetAsync("user", "gone", CancellationToken.None));
    }
}
