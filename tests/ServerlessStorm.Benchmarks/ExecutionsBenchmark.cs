using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Cli.Serve;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// Executions per second of core.noop through the whole local stack (HTTP webhook, in-process bus, rules, runner),
/// with the audit in Azurite written one entity per request, then in entity-group transactions, then (for the
/// audit's share of the latency) kept in memory — all in one run against one Azurite.
/// </summary>
internal static class ExecutionsBenchmark
{
    private sealed record Setup(string Name, bool InMemory, bool Batched);

    public static async Task<int> RunAsync(string[] args)
    {
        var requests = Args.Int(args, "--requests", 2000);
        var concurrency = Args.Int(args, "--concurrency", 64);
        var sequential = Args.Int(args, "--sequential", 300);
        var busConcurrency = Args.Int(args, "--bus-concurrency", 64);
        var inFlight = Args.Int(args, "--in-flight", 8);
        Setup[] setups = [new("table, single-entity writes", false, false), new("table, batched transactions", false, true), new("in memory (no audit I/O)", true, true)];

        var data = Path.Combine(Path.GetTempPath(), "storm-bench-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data);
        Console.WriteLine($"Azurite on ports {string.Join(", ", azurite.Endpoints.Ports)}; machine: {Environment.ProcessorCount} cores; " +
            $"{requests} webhooks at concurrency {concurrency} for throughput, {sequential} one at a time for latency");
        Console.WriteLine();
        Console.WriteLine($"| audit | executions/s (c{concurrency}) | p50 ms (c{concurrency}) | sequential p50 ms | sequential p99 ms | audit requests / execution | audit entities / execution |");
        Console.WriteLine("|---|---|---|---|---|---|---|");

        var results = new Dictionary<string, (LatencyBenchmark.RunStats Load, LatencyBenchmark.RunStats Sequential)>();
        var index = 0;
        foreach (var setup in setups)
        {
            await using var server = await StormServer.StartAsync(new ServeSettings
            {
                Port = AzuriteFixture.FreePort(),
                PacksPath = RepositoryPaths.Packs,
                StorageConnectionString = azurite.Endpoints.ConnectionString,
                InMemoryAudit = setup.InMemory,
                Configuration = new Dictionary<string, string?>
                {
                    ["Storage:Prefix"] = $"bench{index++}",
                    ["Storage:AuditBatching"] = setup.Batched ? "true" : "false",
                    ["Bus:Concurrency"] = busConcurrency.ToString(CultureInfo.InvariantCulture),
                    ["Storage:AuditWritesInFlight"] = inFlight.ToString(CultureInfo.InvariantCulture),
                },
            }, logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());
            var audit = server.Services.GetRequiredService<IAuditStore>();
            var table = audit as TableAuditStore;
            using var http = new HttpClient { BaseAddress = new Uri(server.Url) };

            await LatencyBenchmark.MeasureAsync(http, audit, 100, 8, $"{setup.Name} warm-up");
            var seq = await LatencyBenchmark.MeasureAsync(http, audit, sequential, 1, $"{setup.Name} sequential");
            var before = table?.WriteCounts ?? (0, 0);
            var load = await LatencyBenchmark.MeasureAsync(http, audit, requests, concurrency, $"{setup.Name} concurrency {concurrency}");
            var after = table?.WriteCounts ?? (0, 0);
            results[setup.Name] = (load, seq);
            var perExecution = table is null ? "-" : string.Create(CultureInfo.InvariantCulture, $"{(after.Requests - before.Requests) / (double)requests:0.00}");
            var entities = table is null ? "-" : string.Create(CultureInfo.InvariantCulture, $"{(after.Entities - before.Entities) / (double)requests:0.00}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {setup.Name} | {load.PerSecond:0} | {load.P50:0.0} | {seq.P50:0.00} | {seq.P99:0.00} | {perExecution} | {entities} |"));
        }

        var single = results[setups[0].Name];
        var batched = results[setups[1].Name];
        var memory = results[setups[2].Name];
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"batched / single-entity executions/s: {batched.Load.PerSecond / single.Load.PerSecond:0.0}x"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"audit's share of the sequential p50: {batched.Sequential.P50:0.00} ms with the Table audit vs {memory.Sequential.P50:0.00} ms in memory (+{(batched.Sequential.P50 / memory.Sequential.P50 - 1) * 100:0}%)"));
        Directory.Delete(data, recursive: true);
        return 0;
    }
}
