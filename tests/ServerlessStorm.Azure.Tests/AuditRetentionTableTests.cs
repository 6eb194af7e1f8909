using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class TableAuditRetentionContractTests(AzuriteFixture azurite) : AuditRetentionContractTests
{
    protected override Task<(IAuditStore Audit, IExecutionOutputStore Output)> CreateAsync()
    {
        var options = Options.Create(azurite.NewStorageOptions());
        return Task.FromResult<(IAuditStore, IExecutionOutputStore)>((new TableAuditStore(options, TimeProvider.System), new TableExecutionOutputStore(options)));
    }

    [Fact]
    public async Task Purge_DeletesExactlyTheExpiredDaysPartitions_TheirTraceAndDeliveryRows_AndTheirBlobs()
    {
        var settings = azurite.NewStorageOptions();
        var options = Options.Create(settings);
        var audit = new TableAuditStore(options, TimeProvider.System);
        var output = new TableExecutionOutputStore(options);
        await RecordDayAsync(audit, output, Expired, "old");
        var kept = await RecordDayAsync(audit, output, Kept, "new");
        var names = settings.Names;
        var before = await SnapshotAsync(names.AuditTable, names.ExecutionOutputTable, names.AuditPayloadsContainer);

        var summary = await Retention(audit, output).PurgeAsync(DateOnly.FromDateTime(Kept.UtcDateTime), null, null, CancellationToken.None);

        var after = await SnapshotAsync(names.AuditTable, names.ExecutionOutputTable, names.AuditPayloadsContainer);
        var expiredDay = $"{Expired.UtcDateTime:yyyyMMdd}";
        // Every row and blob of the expired day went; everything else stayed, but the trace and delivery rows it named.
        Assert.DoesNotContain(after, key => key.Contains(expiredDay, StringComparison.Ordinal));
        Assert.DoesNotContain(after, key => key.Contains("trace-old", StringComparison.Ordinal) || key.Contains("delivery-old", StringComparison.Ordinal));
        Assert.Equal(before.Where(key => !key.Contains(expiredDay, StringComparison.Ordinal) && !key.Contains("trace-old", StringComparison.Ordinal)
            && !key.Contains("delivery-old", StringComparison.Ordinal)).Order(), after.Order());
        Assert.Contains(after, key => key.StartsWith("blob ", StringComparison.Ordinal) && key.Contains(kept.RunId, StringComparison.Ordinal));
        Assert.Equal(1, Assert.Single(summary.Days).Payloads);
        Assert.True(before.Count - after.Count >= 10, $"{before.Count} → {after.Count}");
    }

    // Every table row (table, partition, row) and blob name under this test's prefix.
    private async Task<List<string>> SnapshotAsync(string auditTable, string outputTable, string container)
    {
        var keys = new List<string>();
        foreach (var table in new[] { auditTable, outputTable })
        {
            await foreach (var row in new TableClient(azurite.ConnectionString, table).QueryAsync<TableEntity>(select: ["PartitionKey", "RowKey"]))
            {
                keys.Add($"{table} {row.PartitionKey} {row.RowKey}");
            }
        }

        await foreach (var blob in new BlobContainerClient(azurite.ConnectionString, container).GetBlobsAsync())
        {
            keys.Add($"blob {blob.Name}");
        }

        return keys;
    }
}

[Collection(AzuriteCollection.Name)]
public sealed class WriteBehindAuditRetentionContractTests(AzuriteFixture azurite) : AuditRetentionContractTests, IAsyncLifetime
{
    private readonly string _journal = Path.Combine(Path.GetTempPath(), $"storm-journal-{Guid.NewGuid():N}");
    private readonly List<WriteBehindAuditStore> _stores = [];

    // Its delivery ids are kept on its own disk and expire on their own.
    protected override bool KeepsDeliveryClaimsWithTheAudit => false;

    protected override Task<(IAuditStore Audit, IExecutionOutputStore Output)> CreateAsync()
    {
        var options = Options.Create(azurite.NewStorageOptions());
        var store = new WriteBehindAuditStore(new TableAuditStore(options, TimeProvider.System), Path.Combine(_journal, _stores.Count.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new WriteBehindOptions(), TimeProvider.System, NullLogger<WriteBehindAuditStore>.Instance);
        _stores.Add(store);
        return Task.FromResult<(IAuditStore, IExecutionOutputStore)>((store, new TableExecutionOutputStore(options)));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        if (Directory.Exists(_journal))
        {
            Directory.Delete(_journal, recursive: true);
        }
    }
}
