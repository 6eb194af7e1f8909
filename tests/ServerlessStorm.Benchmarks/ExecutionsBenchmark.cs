using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Cli.Serve;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// Executions per second of core.noop through the whole local stack (HTTP webhook, bus, rules, runner) with the
/// audit in Azurite written one entity per request, then in entity-group transactions, then kept in memory (the
/// audit's share of the latency) — on the in-process bus, and for latency also on Storage Queues — all in one run
/// against one Azurite.
/// </summary>
internal static class ExecutionsBenchmark
{
    private sealed record Setup(string Transport, string Audit, bool InMemory, bool Batched, bool Throughput, bool WriteBehind = false, bool Journal = true);

    public static async Task<int> RunAsync(string[] args)
    {
        var requests = Args.Int(args, "--requests", 2000);
        var concurrency = Args.Int(args, "--concurrency", 64);
        var sequential = Args.Int(args, "--sequential", 300);
        var busConcurrency = Args.Int(args, "--bus-concurrency", 64);
        var inFlight = Args.Int(args, "--in-flight", 8);
        var only = Args.Text(args, "--only", "");
        var shards = Args.Int(args, "--shards", 8);
        var rounds = Args.Int(args, "--rounds", 8);
        var azuriteInMemory = args.Contains("--azurite-in-memory");
        const string Single = "table, single-entity writes", Batched = "table, batched transactions", Memory = "in memory (no audit I/O)",
            Behind = "table, written behind (journal)", BehindNoJournal = "table, written behind (no journal)",
            BehindSingle = "table, written behind (journal), single-entity writes";
        Setup[] setups =
        [
            new(ServeSettings.Transports.InProcess, Single, false, false, true),
            new(ServeSettings.Transports.InProcess, Batched, false, true, true),
            new(ServeSettings.Transports.InProcess, Behind, false, true, true, WriteBehind: true),
            new(ServeSettings.Transports.InProcess, BehindNoJournal, false, true, true, WriteBehind: true, Journal: false),
            new(ServeSettings.Transports.InProcess, BehindSingle, false, false, true, WriteBehind: true),
            new(ServeSettings.Transports.InProcess, Memory, true, true, true),
            new(ServeSettings.Transports.StorageQueue, Batched, false, true, false),
            new(ServeSettings.Transports.StorageQueue, Memory, true, true, false),
        ];

        // Everything this run creates in storage is named with this, so that a real account can be cleaned up after it.
        var run = "b" + Guid.NewGuid().ToString("N")[..6];
        var givenStorage = Args.Text(args, "--storage", "");
        var data = Path.Combine(Path.GetTempPath(), "storm-bench-" + run);
        Directory.CreateDirectory(data);
        await using var azurite = givenStorage.Length > 0 ? null
            : await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data, inMemory: azuriteInMemory);
        var connectionString = azurite?.Endpoints.ConnectionString ?? givenStorage;
        await using var created = new RunResources(connectionString, run, delete: azurite is null);
        Console.WriteLine((azurite is null
                ? $"Storage: the account given by --storage (what this run creates is named {run}* and deleted at the end)"
                : $"Azurite ({(azuriteInMemory ? "in-memory persistence" : "persisting to disk")}) on ports {string.Join(", ", azurite.Endpoints.Ports)}")
            + $"; machine: {Environment.ProcessorCount} cores; {requests} webhooks at concurrency {concurrency} for throughput, {sequential} one at a time for latency");
        Console.WriteLine();
        await RawTableWritesAsync(connectionString, run, azurite is null ? "Storage" : "Azurite");
        Console.WriteLine($"| transport | audit | executions/s (c{concurrency}) | p50 ms (c{concurrency}) | sequential p50 ms | sequential p99 ms | audit requests / execution | audit entities / execution |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");

        Task<StormServer> StartAsync(Setup setup, int index) => StormServer.StartAsync(new ServeSettings
        {
            Port = AzuriteFixture.FreePort(),
            PacksPath = RepositoryPaths.Packs,
            Transport = setup.Transport,
            StorageConnectionString = connectionString,
            InMemoryAudit = setup.InMemory,
            AuditWriteBehind = setup.WriteBehind,
            AuditJournalDirectory = Path.Combine(data, "journal"),
            CredentialsFile = ServerClients.CredentialsFile,
            Configuration = new Dictionary<string, string?>
            {
                ["Storage:Prefix"] = $"{run}x{index}",
                ["Storage:AuditBatching"] = setup.Batched ? "true" : "false",
                ["Storage:AuditWritesInFlight"] = inFlight.ToString(CultureInfo.InvariantCulture),
                ["Storage:AuditShards"] = shards.ToString(CultureInfo.InvariantCulture),
                ["Bus:Concurrency"] = busConcurrency.ToString(CultureInfo.InvariantCulture),
                ["Storage:WriteBehind:Journal"] = setup.Journal ? "true" : "false",
                // Few pending writes, so that executions/s is what storage sustains, not what a backlog absorbs.
                ["Storage:WriteBehind:MaxPending"] = "1000",
            },
        }, logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());

        if (only == "abba")
        {
            foreach (var behindSetup in setups.Where(s => s.WriteBehind && s.Batched))
            {
                await AuditShareAbbaAsync(StartAsync, behindSetup, setups.Single(s => s.InMemory && s.Transport == ServeSettings.Transports.InProcess), rounds, sequential / 2);
            }

            return 0;
        }

        var results = new Dictionary<(string, string), (LatencyBenchmark.RunStats? Load, LatencyBenchmark.RunStats Sequential)>();
        var index = 0;
        foreach (var setup in setups.Where(s => $"{s.Transport}, {s.Audit}".Contains(only, StringComparison.Ordinal)))
        {
            await using var server = await StartAsync(setup, index++);
            var audit = server.Services.GetRequiredService<IAuditStore>();
            var table = setup.InMemory ? null : server.Services.GetRequiredService<TableAuditStore>();
            using var http = ServerClients.For(server);
            var label = $"{setup.Transport}, {setup.Audit}";

            await LatencyBenchmark.MeasureAsync(http, audit, 100, 8, $"{label} warm-up");
            var seq = await LatencyBenchmark.MeasureAsync(http, audit, sequential, 1, $"{label} sequential");
            LatencyBenchmark.RunStats? load = null;
            string perExecution = "-", entities = "-";
            if (setup.Throughput)
            {
                var before = table?.WriteCounts ?? (0, 0);
                load = await LatencyBenchmark.MeasureAsync(http, audit, requests, concurrency, $"{label} concurrency {concurrency}");
                var after = table?.WriteCounts ?? (0, 0);
                if (table is not null)
                {
                    perExecution = string.Create(CultureInfo.InvariantCulture, $"{(after.Requests - before.Requests) / (double)requests:0.00}");
                    entities = string.Create(CultureInfo.InvariantCulture, $"{(after.Entities - before.Entities) / (double)requests:0.00}");
                }
            }

            results[(setup.Transport, setup.Audit)] = (load, seq);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {setup.Transport} | {setup.Audit} | {(load is null ? "-" : load.PerSecond.ToString("0", CultureInfo.InvariantCulture))} | {(load is null ? "-" : load.P50.ToString("0.0", CultureInfo.InvariantCulture))} | {seq.P50:0.00} | {seq.P99:0.00} | {perExecution} | {entities} |"));
        }

        var inProcess = ServeSettings.Transports.InProcess;
        var queues = ServeSettings.Transports.StorageQueue;
        Console.WriteLine();
        foreach (var (batched, single, label) in new[] { (Batched, Single, "in-process"), (Behind, BehindSingle, "in-process, written behind") })
        {
            if (results.TryGetValue((inProcess, batched), out var b) && results.TryGetValue((inProcess, single), out var one))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"batched / single-entity executions/s ({label}): {b.Load!.PerSecond / one.Load!.PerSecond:0.0}x"));
            }
        }

        if (only.Length > 0)
        {
            return 0;
        }

        foreach (var transport in new[] { inProcess, queues })
        {
            var withAudit = results[(transport, Batched)].Sequential.P50;
            var without = results[(transport, Memory)].Sequential.P50;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"audit's share of the sequential p50 ({transport}): {withAudit:0.00} ms with the Table audit vs {without:0.00} ms in memory ({(withAudit / without - 1) * 100:+0;-0}%)"));
        }

        foreach (var audit in new[] { Behind, BehindNoJournal })
        {
            var behind = results[(inProcess, audit)].Sequential.P50;
            var memory = results[(inProcess, Memory)].Sequential.P50;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"audit's share of the sequential p50 ({inProcess}, {audit}): {behind:0.00} ms vs {memory:0.00} ms in memory ({(behind / memory - 1) * 100:+0;-0}%)"));
        }
        Console.WriteLine();
        foreach (var behindSetup in setups.Where(s => s.WriteBehind && s.Batched))
        {
            await AuditShareAbbaAsync(StartAsync, behindSetup, setups.Single(s => s.InMemory && s.Transport == ServeSettings.Transports.InProcess), rounds, sequential / 2);
        }

        Directory.Delete(data, recursive: true);
        return 0;
    }

    // The written-behind audit's share of the one-at-a-time latency, compared fairly: it and the in-memory audit run
    // side by side in this process (same JIT state, same Azurite), in rounds alternating ABBA; every round's writes
    // are stored before the next round starts (the measurement's trace reads wait for them), so no round pays for
    // another's storing.
    private static async Task AuditShareAbbaAsync(Func<Setup, int, Task<StormServer>> start, Setup behindSetup, Setup memorySetup, int rounds, int perRound)
    {
        const int Warmup = 500;
        await using var behind = await start(behindSetup, behindSetup.Journal ? 100 : 102);
        await using var memory = await start(memorySetup, 101);
        var sides = new[] { (Name: behindSetup.Audit, Server: behind), (Name: "in memory", Server: memory) }
            .Select(side => (side.Name, Audit: side.Server.Services.GetRequiredService<IAuditStore>(), Http: ServerClients.For(side.Server), Latencies: new List<double>()))
            .ToArray();
        foreach (var side in sides)
        {
            await LatencyBenchmark.MeasureAsync(side.Http, side.Audit, Warmup, 1, $"{side.Name} warm-up");
        }

        using var appends = new JournalAppends();
        for (var round = 0; round < rounds; round++)
        {
            var order = round % 4 is 0 or 3 ? sides : [sides[1], sides[0]];
            foreach (var side in order)
            {
                side.Latencies.AddRange((await LatencyBenchmark.MeasureAsync(side.Http, side.Audit, perRound, 1, $"{side.Name} round {round + 1}")).Latencies);
            }
        }

        var p50 = sides.Select(side => LatencyBenchmark.Percentile([.. side.Latencies.Order()], 50)).ToArray();
        var p99 = sides.Select(side => LatencyBenchmark.Percentile([.. side.Latencies.Order()], 99)).ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"audit's share of the sequential p50 (in-process, ABBA, {rounds} rounds of {perRound}): {behindSetup.Audit} {p50[0]:0.000} ms (p99 {p99[0]:0.00}) vs in memory {p50[1]:0.000} ms (p99 {p99[1]:0.00}) ({(p50[0] / p50[1] - 1) * 100:+0;-0}%)"));
        if (appends.Count > 0)
        {
            // Timed inside the journal: its cost without the noise of comparing two p50s. A webhook's last append
            // (its execution finished) comes after the measured end, so the sum is an upper bound of its share.
            var webhooks = rounds * perRound;
            var all = appends.Durations();
            var perWebhook = all.Sum() / webhooks;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  journal, timed inside ({all.Length / (double)webhooks:0.0} appends per webhook): one append p50 {Median(all):0.0} µs, p90 {LatencyBenchmark.Percentile(all, 90):0.0}, p99 {LatencyBenchmark.Percentile(all, 99):0.0}; " +
                $"per webhook {perWebhook:0.0} µs mean = {perWebhook / 1000 / p50[1] * 100:0.0}% of the in-memory p50"));
            Console.WriteLine("  median µs by kind: " + string.Join(", ", appends.Kinds.Select(kind => string.Create(CultureInfo.InvariantCulture, $"{kind} {Median(appends.Durations(kind)):0.0}"))));
        }

        foreach (var side in sides)
        {
            side.Http.Dispose();
        }
    }

    private static double Median(double[] sorted) => LatencyBenchmark.Percentile(sorted, 50);

    /// <summary>The journal's append durations while it lives, from the engine's metrics.</summary>
    private sealed class JournalAppends : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly List<(string Kind, double Micros)> _appends = [];

        public JournalAppends()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == StormMetrics.MeterName && instrument.Name == StormMetrics.JournalAppendName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<double>((_, micros, tags, _) =>
            {
                var kind = tags.Length > 0 ? tags[0].Value as string ?? "" : "";
                lock (_appends)
                {
                    _appends.Add((kind, micros));
                }
            });
            _listener.Start();
        }

        public int Count
        {
            get
            {
                lock (_appends)
                {
                    return _appends.Count;
                }
            }
        }

        public IEnumerable<string> Kinds
        {
            get
            {
                lock (_appends)
                {
                    return [.. _appends.Select(a => a.Kind).Distinct().Order(StringComparer.Ordinal)];
                }
            }
        }

        /// <summary>Durations (µs), sorted; of one kind when given.</summary>
        public double[] Durations(string? kind = null)
        {
            lock (_appends)
            {
                return [.. _appends.Where(a => kind is null || a.Kind == kind).Select(a => a.Micros).Order()];
            }
        }

        public void Dispose() => _listener.Dispose();
    }

    // What Azurite (or the given account) itself can take from this machine, for the ceiling the stack runs into: entities written one per
    // request (16 at a time) and in transactions of 100 (4 at a time), into the same 8 partitions either way (the
    // emulator finds a row by scanning its partition, so partition sizes must match). Two shapes: two properties
    // (a 600-byte string), and an execution row's 19 properties as the audit writes them.
    private static async Task RawTableWritesAsync(string connectionString, string run, string storeName)
    {
        const int Entities = 4000, Partitions = 8;
        var payload = new string('x', 600);
        var history = "[[\"requested\",\"2026-11-24T10:00:00.0000000+00:00\"],[\"scheduled\",\"2026-11-24T10:00:00.0010000+00:00\"],"
            + "[\"running\",\"2026-11-24T10:00:00.0020000+00:00\"],[\"succeeded\",\"2026-11-24T10:00:00.0030000+00:00\"]]";
        global::Azure.Data.Tables.TableEntity Small(string partition, int i) => new(partition, i.ToString("D6", CultureInfo.InvariantCulture)) { ["Payload"] = payload, ["Status"] = "succeeded" };
        global::Azure.Data.Tables.TableEntity ExecutionShaped(string partition, int i) => new(partition, $"9999999999|{i:D24}")
        {
            ["Id"] = i.ToString("D24", CultureInfo.InvariantCulture), ["ActionRef"] = "core.noop", ["RunnerType"] = "noop",
            ["TraceTag"] = $"trace-{i:D8}", ["TriggerInstanceId"] = $"{i:D24}", ["RuleRef"] = "examples.ping",
            ["Parameters"] = "{}", ["SealedParameters"] = null, ["ReRunOf"] = null, ["ReRunTasks"] = null, ["RetryCount"] = 0,
            ["ParentId"] = null, ["WorkflowTask"] = null, ["Status"] = "succeeded", ["History"] = history,
            ["StartTimestamp"] = DateTimeOffset.UtcNow, ["EndTimestamp"] = DateTimeOffset.UtcNow, ["Result"] = "{\"succeeded\":true}", ["Error"] = null,
        };

        foreach (var (name, shape, entity) in new (string, string, Func<string, int, global::Azure.Data.Tables.TableEntity>)[]
            { (run + "rawsmall", "2 properties, 600 bytes", Small), (run + "rawexecutions", "an execution row (19 properties)", ExecutionShaped) })
        {
            var table = new global::Azure.Data.Tables.TableClient(connectionString, name);
            await table.CreateIfNotExistsAsync();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await Parallel.ForEachAsync(Enumerable.Range(0, Entities), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
                await table.UpsertEntityAsync(entity($"single{i % Partitions}", i), global::Azure.Data.Tables.TableUpdateMode.Replace, ct));
            var single = Entities / clock.Elapsed.TotalSeconds;

            clock.Restart();
            await Parallel.ForEachAsync(Enumerable.Range(0, Entities / 100), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (b, ct) =>
                await table.SubmitTransactionAsync(Enumerable.Range(b * 100, 100).Select(i => new global::Azure.Data.Tables.TableTransactionAction(
                    global::Azure.Data.Tables.TableTransactionActionType.UpsertReplace, entity($"batch{b % Partitions}", i))), ct));
            var batched = Entities / clock.Elapsed.TotalSeconds;
            await table.DeleteAsync();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{storeName} alone, {shape}: {single:0} entities/s one per request, {batched:0} entities/s in transactions of 100 ({batched / single:0.0}x)"));
        }

        Console.WriteLine();
    }

    /// <summary>Deletes the tables, queues and blob containers a run created in a given account (their names start with the run's).</summary>
    private sealed class RunResources(string connectionString, string run, bool delete) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (!delete)
            {
                return;
            }

            var (tables, queues, containers) = (0, 0, 0);
            var tableService = new global::Azure.Data.Tables.TableServiceClient(connectionString);
            await foreach (var table in tableService.QueryAsync(filter: (string?)null))
            {
                if (table.Name.StartsWith(run, StringComparison.OrdinalIgnoreCase))
                {
                    await tableService.DeleteTableAsync(table.Name);
                    tables++;
                }
            }

            var queueService = new global::Azure.Storage.Queues.QueueServiceClient(connectionString);
            await foreach (var queue in queueService.GetQueuesAsync(prefix: run))
            {
                await queueService.DeleteQueueAsync(queue.Name);
                queues++;
            }

            var blobService = new global::Azure.Storage.Blobs.BlobServiceClient(connectionString);
            var left = new List<string>();
            await foreach (var container in blobService.GetBlobContainersAsync(prefix: run))
            {
                var client = blobService.GetBlobContainerClient(container.Name);
                try
                {
                    if (container.Properties.LeaseState == global::Azure.Storage.Blobs.Models.LeaseState.Leased)
                    {
                        // The workflow task hub leases its container while a host runs, and the lease outlives the host a while.
                        await global::Azure.Storage.Blobs.Specialized.SpecializedBlobExtensions.GetBlobLeaseClient(client).BreakAsync(TimeSpan.Zero);
                    }

                    await client.DeleteAsync();
                    containers++;
                }
                catch (global::Azure.RequestFailedException ex)
                {
                    left.Add($"{container.Name} ({ex.ErrorCode})");
                }
            }

            Console.WriteLine($"Deleted what this run created: {tables} tables, {queues} queues, {containers} blob containers named {run}*"
                + (left.Count > 0 ? $"; could not delete: {string.Join(", ", left)}" : ""));
        }
    }
}
