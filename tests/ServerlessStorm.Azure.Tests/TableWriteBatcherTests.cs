using Azure;
using Azure.Data.Tables;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>Group commit on Azurite: concurrent writes leave as entity-group transactions, each keeps its own outcome.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class TableWriteBatcherTests(AzuriteFixture azurite)
{
    private async Task<TableClient> NewTableAsync(Held? held = null, RequestSizes? sizes = null)
    {
        var options = azurite.NewStorageOptions();
        var clientOptions = new TableClientOptions();
        if (held is not null)
        {
            clientOptions.AddPolicy(held, global::Azure.Core.HttpPipelinePosition.PerCall);
        }

        if (sizes is not null)
        {
            clientOptions.AddPolicy(sizes, global::Azure.Core.HttpPipelinePosition.BeforeTransport);
        }

        var table = new TableServiceClient(options.ConnectionString, clientOptions).GetTableClient(options.TablePrefix + "Batch");
        await table.CreateIfNotExistsAsync();
        return table;
    }

    // Holds the requests that write partition "other" until released: a write there takes the batcher's only flight
    // for as long as the test needs to queue the writes that must wait together, however slow the machine is.
    private sealed class Held : global::Azure.Core.Pipeline.HttpPipelinePolicy
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _released.TrySetResult();

        public override async ValueTask ProcessAsync(global::Azure.Core.HttpMessage message, ReadOnlyMemory<global::Azure.Core.Pipeline.HttpPipelinePolicy> pipeline)
        {
            if (message.Request.Uri.ToString().Contains("PartitionKey='other'", StringComparison.Ordinal))
            {
                await _released.Task;
            }

            await ProcessNextAsync(message, pipeline);
        }

        public override void Process(global::Azure.Core.HttpMessage message, ReadOnlyMemory<global::Azure.Core.Pipeline.HttpPipelinePolicy> pipeline)
        {
            ProcessAsync(message, pipeline).AsTask().GetAwaiter().GetResult();
        }
    }

    // Records the size of every transaction request as it goes on the wire.
    private sealed class RequestSizes : global::Azure.Core.Pipeline.HttpPipelinePolicy
    {
        public System.Collections.Concurrent.ConcurrentBag<long> Transactions { get; } = [];

        public override ValueTask ProcessAsync(global::Azure.Core.HttpMessage message, ReadOnlyMemory<global::Azure.Core.Pipeline.HttpPipelinePolicy> pipeline)
        {
            Record(message);
            return ProcessNextAsync(message, pipeline);
        }

        public override void Process(global::Azure.Core.HttpMessage message, ReadOnlyMemory<global::Azure.Core.Pipeline.HttpPipelinePolicy> pipeline)
        {
            Record(message);
            ProcessNext(message, pipeline);
        }

        private void Record(global::Azure.Core.HttpMessage message)
        {
            if (message.Request.Uri.Path.EndsWith("$batch", StringComparison.Ordinal) && message.Request.Content is { } content)
            {
                using var body = new MemoryStream();
                content.WriteTo(body, CancellationToken.None);
                Transactions.Add(body.Length);
            }
        }
    }

    private static TableTransactionAction Upsert(string partition, string row, object value) =>
        new(TableTransactionActionType.UpsertReplace, new TableEntity(partition, row) { ["V"] = value });

    [Fact]
    public async Task ConcurrentWrites_LeaveInFewRequests_AndEachCallerGetsItsETag()
    {
        var table = await NewTableAsync();
        var batcher = new TableWriteBatcher(table, batched: true, maxInFlight: 1);

        var responses = await Task.WhenAll(Enumerable.Range(0, 250).Select(i => batcher.WriteAsync(Upsert($"p{i % 2}", $"r{i:D3}", i), CancellationToken.None)));

        Assert.All(responses, r => Assert.NotNull(r.Headers.ETag));
        var (requests, entities) = batcher.Counts;
        Assert.Equal(250, entities);
        Assert.InRange(requests, 3, 20); // 125 rows per partition: at least two transactions each, far fewer than 250 requests
        var stored = table.Query<TableEntity>().ToList();
        Assert.Equal(250, stored.Count);
        var row = stored.Single(e => e.RowKey == "r007");
        Assert.Equal(responses[7].Headers.ETag, row.ETag);
    }

    [Fact]
    public async Task AFailedWriteInABatch_FailsOnlyItself_AndTheRestIsStored()
    {
        var held = new Held();
        var table = await NewTableAsync(held);
        await table.AddEntityAsync(new TableEntity("p", "taken"));
        var batcher = new TableWriteBatcher(table, batched: true, maxInFlight: 1);
        var blocker = batcher.WriteAsync(Upsert("other", "x", 0), CancellationToken.None); // holds the only flight until released, so the next writes queue up together

        var writes = new List<Task<Response>>
        {
            batcher.WriteAsync(Upsert("p", "a", 1), CancellationToken.None),
            batcher.WriteAsync(new TableTransactionAction(TableTransactionActionType.Add, new TableEntity("p", "taken")), CancellationToken.None),
            batcher.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateReplace, new TableEntity("p", "b"), new ETag("W/\"datetime'2020-01-01T00%3A00%3A00Z'\"")), CancellationToken.None),
            batcher.WriteAsync(Upsert("p", "c", 3), CancellationToken.None),
        };
        Assert.False(blocker.IsCompleted);
        held.Release();
        await blocker;

        var conflict = await Assert.ThrowsAnyAsync<RequestFailedException>(() => writes[1]);
        Assert.Equal(409, conflict.Status);
        var missing = await Assert.ThrowsAnyAsync<RequestFailedException>(() => writes[2]);
        Assert.Equal(404, missing.Status);
        await writes[0];
        await writes[3];
        Assert.Equal(["a", "c", "taken"], table.Query<TableEntity>(e => e.PartitionKey == "p").Select(e => e.RowKey).Order());
    }

    [Fact]
    public async Task LargeRowsWaitingTogether_LeaveInTransactionsUnderTheServiceLimit()
    {
        // 100 rows whose text is escaped six bytes a character: about 18 MB together, over four times the 4 MiB the
        // service takes in one transaction.
        var held = new Held();
        var sizes = new RequestSizes();
        var table = await NewTableAsync(held, sizes);
        var batcher = new TableWriteBatcher(table, batched: true, maxInFlight: 1);
        var blocker = batcher.WriteAsync(Upsert("other", "x", 0), CancellationToken.None);

        var writes = Enumerable.Range(0, 100).Select(i => batcher.WriteAsync(Upsert("p", $"r{i:D3}", new string('é', 30_000)), CancellationToken.None)).ToList();
        Assert.False(blocker.IsCompleted);
        held.Release();
        await blocker;
        await Task.WhenAll(writes);

        Assert.Equal(100, table.Query<TableEntity>(e => e.PartitionKey == "p").Count());
        Assert.True(sizes.Transactions.Count >= 5, $"{sizes.Transactions.Count} transaction(s)");
        Assert.All(sizes.Transactions, bytes => Assert.True(bytes <= 4L * 1024 * 1024, $"a transaction of {bytes} bytes"));
        Assert.All(sizes.Transactions, bytes => Assert.True(bytes <= TableWriteBatcher.MaxBatchBytes, $"the estimate was under the real {bytes} bytes"));
    }

    [Fact]
    public async Task UpsertsOfOneRowWaitingTogether_BecomeOneWrite_WithTheLastValue()
    {
        var held = new Held();
        var table = await NewTableAsync(held);
        var batcher = new TableWriteBatcher(table, batched: true, maxInFlight: 1);
        var blocker = batcher.WriteAsync(Upsert("other", "x", 0), CancellationToken.None);

        var writes = Enumerable.Range(1, 5).Select(i => batcher.WriteAsync(Upsert("p", "row", i), CancellationToken.None)).ToList();
        var merge = batcher.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpsertMerge, new TableEntity("p", "row") { ["W"] = "merged" }), CancellationToken.None);
        Assert.False(blocker.IsCompleted);
        held.Release();
        await blocker;
        await Task.WhenAll([.. writes, merge]);

        var row = (await table.GetEntityAsync<TableEntity>("p", "row")).Value;
        Assert.Equal((5, "merged"), (row.GetInt32("V"), row.GetString("W")));
        Assert.Equal((2, 2), batcher.Counts); // the blocker, then one write for the six
    }

    [Fact]
    public async Task MergesThatDoNotCheckTheVersion_FoldIntoTheWaitingWriteOfTheirRow_OthersWait()
    {
        var held = new Held();
        var table = await NewTableAsync(held);
        await table.AddEntityAsync(new TableEntity("p", "versioned") { ["V"] = 0 });
        var stale = new ETag("W/\"datetime'2020-01-01T00%3A00%3A00Z'\"");
        var batcher = new TableWriteBatcher(table, batched: true, maxInFlight: 1);
        var blocker = batcher.WriteAsync(Upsert("other", "x", 0), CancellationToken.None);

        var record = batcher.WriteAsync(Upsert("p", "ti", "pending"), CancellationToken.None);
        var processing = batcher.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateMerge, new TableEntity("p", "ti") { ["S"] = "processing" }, ETag.All), CancellationToken.None);
        var processed = batcher.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateMerge, new TableEntity("p", "ti") { ["S"] = "processed" }, ETag.All), CancellationToken.None);
        var checkedUpdate = batcher.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateMerge, new TableEntity("p", "versioned") { ["V"] = 1 }, stale), CancellationToken.None);
        Assert.False(blocker.IsCompleted);
        held.Release();
        await blocker;
        await Task.WhenAll(record, processing, processed);

        var row = (await table.GetEntityAsync<TableEntity>("p", "ti")).Value;
        Assert.Equal(("pending", "processed"), (row.GetString("V"), row.GetString("S")));
        Assert.Equal(412, (await Assert.ThrowsAnyAsync<RequestFailedException>(() => checkedUpdate)).Status);
        // The blocker; then "ti" (three writes folded into one entity) with the versioned update, which failed the
        // transaction; then "ti" again on its own.
        Assert.Equal((3, 4), batcher.Counts);
    }

    [Fact]
    public async Task SingleEntityMode_SendsOneRequestPerWrite()
    {
        var table = await NewTableAsync();
        var batcher = new TableWriteBatcher(table, batched: false);

        await Task.WhenAll(Enumerable.Range(0, 30).Select(i => batcher.WriteAsync(Upsert("p", $"r{i}", i), CancellationToken.None)));

        Assert.Equal((30, 30), batcher.Counts);
        Assert.Equal(30, table.Query<TableEntity>().Count());
    }
}
