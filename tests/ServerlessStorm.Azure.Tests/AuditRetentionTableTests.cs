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
        var before = await SnapshotAsync(names.TablePrefix, names.AuditPayloadsContainer);

        var summary = await Retention(audit, output).PurgeAsync(DateOnly.FromDateTime(Kept.UtcDateTime), null, null, CancellationToken.None);

        var after = await SnapshotAsync(names.TablePrefix, names.AuditPayloadsContainer);
        var expiredDay = $"{Expired.UtcDateTime:yyyyMMdd}";
        // Every row and blob of the expired day went (its tables too); everything else stayed, but the trace and delivery rows it named.
        Assert.DoesNotContain(after, key => key.Contains(expiredDay, StringComparison.Ordinal));
        Assert.DoesNotContain(after, key => key.Contains("trace-old", StringComparison.Ordinal) || key.Contains("delivery-old", StringComparison.Ordinal));
        Assert.Equal(before.Where(key => !key.Contains(expiredDay, StringComparison.Ordinal) && !key.Contains("trace-old", StringComparison.Ordinal)
            && !key.Contains("delivery-old", StringComparison.Ordinal)).Order(), after.Order());
        Assert.Contains(after, key => key.StartsWith("blob ", StringComparison.Ordinal) && key.Contains(kept.RunId, StringComparison.Ordinal));
        Assert.Equal(1, Assert.Single(summary.Days).Payloads);
        Assert.True(summary.Days[0].DeletedWhole); // nothing of it unfinished: its tables went whole
        Assert.True(before.Count - after.Count >= 10, $"{before.Count} → {after.Count}");
    }

    [Fact]
    public async Task ATraceTaggedWithItsOwnId_IsFoundWithNoTraceRow_AndAFinishedDayLeavesWithItsTables()
    {
        var settings = azurite.NewStorageOptions();
        var options = Options.Create(settings);
        var audit = new TableAuditStore(options, TimeProvider.System);
        var output = new TableExecutionOutputStore(options);
        var instance = Engine.StormIds.New(Expired);
        var execution = Engine.StormIds.ForRuleEnforcement(instance, "examples.on_push", Expired);
        await audit.RecordTriggerInstanceAsync(TriggerInstance(instance, Expired, instance), CancellationToken.None);
        Assert.True(await audit.TryCreateExecutionAsync(Execution(execution, Expired, instance, ExecutionStatus.Succeeded, cause: instance, rule: "examples.on_push"), CancellationToken.None));
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance, "examples.on_push", execution, RuleEnforcementRecord.Succeeded, null, Expired, instance, "stanley", Expired), CancellationToken.None);
        var run = Engine.StormIds.New(Expired.AddMinutes(1));
        Assert.True(await audit.TryCreateExecutionAsync(Execution(run, Expired.AddMinutes(1), run, ExecutionStatus.Succeeded), CancellationToken.None));
        await output.AppendAsync(run, [new OutputChunk(0, "stdout", "hi\n")], CancellationToken.None);

        var trace = await audit.GetTraceAsync(instance, CancellationToken.None);
        var runTrace = await audit.GetTraceAsync(run, CancellationToken.None);
        var tables = await SnapshotAsync(settings.Names.TablePrefix, settings.Names.AuditPayloadsContainer);

        Assert.Equal(instance, Assert.Single(trace.TriggerInstances).Id);
        Assert.Equal(execution, Assert.Single(trace.RuleEnforcements).ExecutionId);
        Assert.Equal(execution, Assert.Single(trace.Executions).Id);
        Assert.Equal(run, Assert.Single(runTrace.Executions).Id);
        Assert.DoesNotContain(tables, key => key.Contains(" g|", StringComparison.Ordinal)); // no trace rows at all

        await Retention(audit, output).PurgeAsync(DateOnly.FromDateTime(Kept.UtcDateTime), null, null, CancellationToken.None);

        var names = new List<string>();
        await foreach (var table in new TableServiceClient(azurite.ConnectionString).QueryAsync(TableServiceClient.CreateQueryFilter($"TableName ge {settings.Names.TablePrefix} and TableName lt {settings.Names.TablePrefix + "~"}")))
        {
            names.Add(table.Name);
        }

        Assert.DoesNotContain(names, name => name.EndsWith($"{Expired.UtcDateTime:yyyyMMdd}", StringComparison.Ordinal));
        Assert.Empty((await audit.GetTraceAsync(instance, CancellationToken.None)).TriggerInstances);
        Assert.Empty(await output.ReadAsync(run, 0, CancellationToken.None));
    }

    // Every table row (table, partition, row) and blob name under this test's prefix.
    private async Task<List<string>> SnapshotAsync(string prefix, string container)
    {
        var keys = new List<string>();
        var tables = new TableServiceClient(azurite.ConnectionString);
        await foreach (var table in tables.QueryAsync(TableServiceClient.CreateQueryFilter($"TableName ge {prefix} and TableName lt {prefix + "~"}")))
        {
            await foreach (var row in tables.GetTableClient(table.Name).QueryAsync<TableEntity>(select: ["PartitionKey", "RowKey"]))
            {
                keys.Add($"{table.Name} {row.PartitionKey} {row.RowKey}");
            }
        }

        var blobs = new BlobContainerClient(azurite.ConnectionString, container);
        if (await blobs.ExistsAsync())
        {
            await foreach (var blob in blobs.GetBlobsAsync())
            {
                keys.Add($"blob {blob.Name}");
            }
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
