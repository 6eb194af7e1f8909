using System.Text.Json.Nodes;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class TableAuditStoreTests(AzuriteFixture azurite)
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 24, 9, 15, 0, TimeSpan.Zero);

    private TableAuditStore NewStore(out AzureStorageOptions options)
    {
        options = azurite.NewStorageOptions();
        return new TableAuditStore(Options.Create(options), TimeProvider.System);
    }

    private static ExecutionRecord Execution(string id, DateTimeOffset at, string trace = "trace-1", string status = ExecutionStatus.Requested) => new()
    {
        Id = id,
        ActionRef = "core.noop",
        RunnerType = "noop",
        TraceTag = trace,
        Parameters = new JsonObject { ["a"] = 1 },
        Status = status,
        StartTimestamp = at,
        History = [new StatusChange(status, at)],
    };

    [Fact]
    public async Task Execution_RoundTrips_AndUpdatesAreGuardedByTheETag()
    {
        var store = NewStore(out _);
        var record = Execution(StormIds.New(T0), T0);

        Assert.True(await store.TryCreateExecutionAsync(record, CancellationToken.None));
        Assert.False(await store.TryCreateExecutionAsync(Execution(record.Id, T0), CancellationToken.None));

        var first = (await store.GetExecutionAsync(record.Id, CancellationToken.None))!;
        var stale = (await store.GetExecutionAsync(record.Id, CancellationToken.None))!;
        first.Transition(ExecutionStatus.Running, T0.AddSeconds(1));
        first.Result = new JsonObject { ["stdout"] = "ok" };
        Assert.True(await store.TryUpdateExecutionAsync(first, CancellationToken.None));
        stale.Transition(ExecutionStatus.Failed, T0.AddSeconds(2));
        Assert.False(await store.TryUpdateExecutionAsync(stale, CancellationToken.None));

        var read = (await store.GetExecutionAsync(record.Id, CancellationToken.None))!;
        Assert.Equal(ExecutionStatus.Running, read.Status);
        Assert.Equal("ok", read.Result!["stdout"]!.GetValue<string>());
        Assert.Equal([ExecutionStatus.Requested, ExecutionStatus.Running], read.History.Select(h => h.Status));
        Assert.Equal(T0.AddSeconds(1), read.History[1].At);
    }

    [Fact]
    public async Task FirstAccepted_IsTheFirstCallersTime_ForEveryLaterDeliveryAndAnotherStoreInstance()
    {
        var store = NewStore(out var options);
        var other = new TableAuditStore(Options.Create(options), TimeProvider.System);

        Assert.Equal(T0, await store.FirstAcceptedAsync("delivery-1", T0, CancellationToken.None));
        Assert.Equal(T0, await store.FirstAcceptedAsync("delivery-1", T0.AddHours(3), CancellationToken.None));
        Assert.Equal(T0, await other.FirstAcceptedAsync("delivery-1", T0.AddDays(2), CancellationToken.None));
        Assert.Equal(T0.AddMinutes(1), await other.FirstAcceptedAsync("delivery-2", T0.AddMinutes(1), CancellationToken.None));
    }

    [Fact]
    public async Task Queries_ByTimeRangeAndStatus_ReturnNewestFirst()
    {
        var store = NewStore(out _);
        var ids = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            var at = T0.AddMinutes(40 * i);
            var record = Execution(StormIds.New(at), at, status: i % 2 == 0 ? ExecutionStatus.Succeeded : ExecutionStatus.Failed);
            await store.TryCreateExecutionAsync(record, CancellationToken.None);
            ids.Add(record.Id);
        }

        var all = await store.QueryExecutionsAsync(new AuditQuery(From: T0, To: T0.AddHours(5)), CancellationToken.None);
        var failed = await store.QueryExecutionsAsync(new AuditQuery(ExecutionStatus.Failed, T0, T0.AddHours(5)), CancellationToken.None);
        var window = await store.QueryExecutionsAsync(new AuditQuery(From: T0.AddMinutes(30), To: T0.AddMinutes(130)), CancellationToken.None);
        var limited = await store.QueryExecutionsAsync(new AuditQuery(From: T0, To: T0.AddHours(5), Limit: 2), CancellationToken.None);

        Assert.Equal(Enumerable.Reverse(ids), all.Select(e => e.Id));
        Assert.Equal([ids[5], ids[3], ids[1]], failed.Select(e => e.Id));
        Assert.Equal([ids[3], ids[2], ids[1]], window.Select(e => e.Id));
        Assert.Equal([ids[5], ids[4]], limited.Select(e => e.Id));
    }

    [Fact]
    public async Task Trace_LinksTriggerInstanceEnforcementAndExecution()
    {
        var store = NewStore(out _);
        await store.RecordTriggerInstanceAsync(new TriggerInstanceRecord
        {
            Id = "ti-1", TriggerType = "core.st2.webhook", Payload = new JsonObject { ["body"] = "x" }, OccurredAt = T0, TraceTag = "trace-x", Status = "pending",
        }, CancellationToken.None);
        await store.UpdateTriggerInstanceStatusAsync("ti-1", T0, "processed", null, CancellationToken.None);
        var executionId = StormIds.ForRuleEnforcement("ti-1", "examples.hello", T0);
        await store.RecordRuleEnforcementAsync(new RuleEnforcementRecord("ti-1", "examples.hello", executionId, RuleEnforcementRecord.Succeeded, null, T0, "trace-x"), CancellationToken.None);
        await store.TryCreateExecutionAsync(Execution(executionId, T0, "trace-x"), CancellationToken.None);

        var trace = await store.GetTraceAsync("trace-x", CancellationToken.None);
        var processed = await store.QueryTriggerInstancesAsync(new AuditQuery("processed", T0.AddMinutes(-1), T0.AddMinutes(1)), CancellationToken.None);

        Assert.Equal("processed", Assert.Single(trace.TriggerInstances).Status);
        Assert.Equal(executionId, Assert.Single(trace.RuleEnforcements).ExecutionId);
        Assert.Equal(executionId, Assert.Single(trace.Executions).Id);
        Assert.Equal("ti-1", Assert.Single(processed).Id);
    }

    [Fact]
    public async Task Traces_WhoseTagsStartAlike_StaySeparate()
    {
        var store = NewStore(out _);
        foreach (var (tag, i) in new[] { ("a", 0), ("a|b", 1), ("a%7Cb", 2) })
        {
            await store.TryCreateExecutionAsync(Execution(StormIds.New(T0.AddSeconds(i)), T0.AddSeconds(i), tag), CancellationToken.None);
        }

        foreach (var tag in new[] { "a", "a|b", "a%7Cb" })
        {
            Assert.Equal(tag, Assert.Single((await store.GetTraceAsync(tag, CancellationToken.None)).Executions).TraceTag);
        }
    }

    [Fact]
    public async Task LargeResult_GoesToBlobStorage_AndReadsBackWhole()
    {
        var store = NewStore(out var options);
        var record = Execution(StormIds.New(T0), T0);
        await store.TryCreateExecutionAsync(record, CancellationToken.None);
        var big = string.Concat(Enumerable.Repeat("0123456789", 50_000));
        record.Result = new JsonObject { ["stdout"] = big };
        record.Transition(ExecutionStatus.Succeeded, T0.AddSeconds(1));
        Assert.True(await store.TryUpdateExecutionAsync(record, CancellationToken.None));

        var read = (await store.GetExecutionAsync(record.Id, CancellationToken.None))!;
        var rows = new List<TableEntity>();
        await foreach (var entity in new TableServiceClient(options.ConnectionString).GetTableClient(options.TablePrefix + "Audit20261124").QueryAsync<TableEntity>())
        {
            rows.Add(entity);
        }

        Assert.Equal(big, read.Result!["stdout"]!.GetValue<string>());
        Assert.StartsWith("blob:", rows.Single(r => r.GetString("Id") == record.Id && r.PartitionKey.StartsWith("x|", StringComparison.Ordinal)).GetString("Result"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoWritersOfALargeResult_TheStoredRowKeepsItsOwnResult()
    {
        // The loser of the ETag check writes its blob too (before the check): it must not replace the winner's.
        var store = NewStore(out _);
        var record = Execution(StormIds.New(T0), T0);
        await store.TryCreateExecutionAsync(record, CancellationToken.None);
        var winner = (await store.GetExecutionAsync(record.Id, CancellationToken.None))!;
        var loser = (await store.GetExecutionAsync(record.Id, CancellationToken.None))!;
        var won = string.Concat(Enumerable.Repeat("winner ", 10_000));
        winner.Result = new JsonObject { ["stdout"] = won };
        winner.Transition(ExecutionStatus.Succeeded, T0.AddSeconds(1));
        loser.Result = new JsonObject { ["stdout"] = string.Concat(Enumerable.Repeat("loser ", 10_000)) };
        loser.Transition(ExecutionStatus.Failed, T0.AddSeconds(2));

        Assert.True(await store.TryUpdateExecutionAsync(winner, CancellationToken.None));
        Assert.False(await store.TryUpdateExecutionAsync(loser, CancellationToken.None));

        var read = (await store.GetExecutionAsync(record.Id, CancellationToken.None))!;
        Assert.Equal(ExecutionStatus.Succeeded, read.Status);
        Assert.Equal(won, read.Result!["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task Executions_SpreadOverShardPartitions_AndEachIsStillFoundById()
    {
        var store = NewStore(out var options);
        var records = Enumerable.Range(0, 200).Select(i => Execution(StormIds.New(T0.AddSeconds(i)), T0.AddSeconds(i))).ToList();
        await Task.WhenAll(records.Select(r => store.TryCreateExecutionAsync(r, CancellationToken.None)));

        var partitions = new HashSet<string>();
        foreach (var table in new[] { "Audit20261124", "Audit" })
        {
            await foreach (var entity in new TableServiceClient(options.ConnectionString).GetTableClient(options.TablePrefix + table).QueryAsync<TableEntity>(select: ["PartitionKey"]))
            {
                partitions.Add(entity.PartitionKey);
            }
        }

        // 200 executions of one day (in the day's table) over all 8 shards of that day (the chance that one stays
        // empty is ~1e-11); their one trace in one trace shard (of the audit's own table).
        Assert.Equal(8, partitions.Count(p => p.StartsWith("x|20261124|", StringComparison.Ordinal)));
        Assert.Single(partitions, p => p.StartsWith("g|", StringComparison.Ordinal));
        foreach (var record in records)
        {
            Assert.Equal(record.Id, (await store.GetExecutionAsync(record.Id, CancellationToken.None))!.Id);
        }

        var listed = await store.QueryExecutionsAsync(new AuditQuery(From: T0, To: T0.AddMinutes(5), Limit: 1000), CancellationToken.None);
        Assert.Equal(records.Select(r => r.Id).Reverse(), listed.Select(e => e.Id));
    }
}
