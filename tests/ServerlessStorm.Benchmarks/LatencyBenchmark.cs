using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Cli.Serve;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// Webhook-to-finished latency of core.noop (the examples.ping rule) through the local stack: real HTTP into
/// storm serve's API, the chosen bus between the stages, the audit in Azurite's Table Storage. Latency is measured
/// from the audit's own clock readings: the trigger instance's acceptance time to the execution's end time.
/// </summary>
internal static class LatencyBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var requests = Args.Int(args, "--requests", 1000);
        var concurrency = Args.Int(args, "--concurrency", 16);
        var transports = Args.Text(args, "--transport", "all") == "all" ? ServeSettings.Transports.All : [Args.Text(args, "--transport", "all")];

        var data = Path.Combine(Path.GetTempPath(), "storm-bench-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data);
        Console.WriteLine($"Azurite on ports {string.Join(", ", azurite.Endpoints.Ports)}; {requests} requests per run; machine: {Environment.ProcessorCount} cores");
        Console.WriteLine();
        Console.WriteLine("| transport | mode | requests | p50 ms | p90 ms | p99 ms | max ms | requests/s |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");

        foreach (var transport in transports)
        {
            await using var server = await StormServer.StartAsync(new ServeSettings
            {
                Port = AzuriteFixture.FreePort(),
                PacksPath = RepositoryPaths.Packs,
                Transport = transport,
                StorageConnectionString = azurite.Endpoints.ConnectionString,
                AuditJournalDirectory = Path.Combine(data, "journal"),
                CredentialsFile = ServerClients.CredentialsFile,
            }, logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());
            var audit = server.Services.GetRequiredService<IAuditStore>();
            var label = $"{transport}, audit {(audit is WriteBehindAuditStore ? "written behind" : "written through")}";
            using var http = ServerClients.For(server);

            await MeasureAsync(http, audit, 50, 4, $"{label} warm-up");
            Print(label, "sequential", requests, await MeasureAsync(http, audit, requests, 1, $"{label} sequential"));
            Print(label, $"concurrency {concurrency}", requests, await MeasureAsync(http, audit, requests, concurrency, $"{label} concurrency {concurrency}"));
        }

        Directory.Delete(data, recursive: true);
        return 0;
    }

    private static void Print(string transport, string mode, int count, RunStats stats) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {transport} | {mode} | {count} | {stats.P50:0.0} | {stats.P90:0.0} | {stats.P99:0.0} | {stats.Max:0.0} | {stats.PerSecond:0} |"));

    private static readonly FinishedCounter finished = new();

    /// <summary>Counts core.noop executions finishing in this process, from the engine's metrics.</summary>
    private sealed class FinishedCounter
    {
        private long _count;

        public FinishedCounter()
        {
            var listener = new System.Diagnostics.Metrics.MeterListener();
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == ServerlessStorm.Engine.Diagnostics.StormMetrics.MeterName && instrument.Name == ServerlessStorm.Engine.Diagnostics.StormMetrics.ExecutionsFinishedName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "action" && (string?)tag.Value == "core.noop")
                    {
                        Interlocked.Add(ref _count, value);
                    }
                }
            });
            listener.Start();
        }

        public long Count => Interlocked.Read(ref _count);
    }

    /// <summary>Webhook-to-finished latencies (ms, from the audit's own timestamps) and executions finished per second.</summary>
    public sealed record RunStats(double P50, double P90, double P99, double Max, double PerSecond, double[] Latencies);

    /// <summary>The value below which <paramref name="p"/> percent of the sorted <paramref name="latencies"/> lie.</summary>
    public static double Percentile(double[] latencies, double p) => latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(p / 100 * latencies.Length) - 1)];

    /// <summary>Sends <paramref name="count"/> ping webhooks, <paramref name="parallelism"/> at a time, and waits for every execution to finish.</summary>
    public static async Task<RunStats> MeasureAsync(HttpClient http, IAuditStore audit, int count, int parallelism, string label)
    {
        var noopBefore = finished.Count;
        var progressInterval = TimeSpan.FromSeconds(2);
        var traceTags = new string[count];
        var next = -1;
        var progress = Task.Run(async () =>
        {
            while (Volatile.Read(ref next) < count - 1)
            {
                await Task.Delay(progressInterval);
                Console.Error.WriteLine($"  {label}: {Math.Min(count, Volatile.Read(ref next) + 1)}/{count} sent");
            }
        });
        await Task.WhenAll(Enumerable.Range(0, parallelism).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                using var response = await http.PostAsync("/api/v1/webhooks/ping", new StringContent("{\"n\":" + i + "}", Encoding.UTF8, "application/json"));
                response.EnsureSuccessStatusCode();
                traceTags[i] = (await response.Content.ReadFromJsonAsync<JsonObject>())!["trace_tag"]!.GetValue<string>();
            }
        }));
        await progress;

        // Wait for the stack to finish them all (counted in-process through its metrics), so that the checks below
        // do not compete with the run for the audit's storage.
        await Eventually.TrueAsync(() => finished.Count >= noopBefore + count, TimeSpan.FromMinutes(5), $"{label}: {count} executions to finish");

        var latencies = new double[count];
        var lastEnd = DateTimeOffset.MinValue;
        var firstStart = DateTimeOffset.MaxValue;
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(traceTags[i], ct),
                t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status) && t.TriggerInstances.Any(ti => ti.TriggerType == CoreTriggers.Webhook), TimeSpan.FromMinutes(5));
            var execution = trace.Executions[0];
            if (execution.Status != ExecutionStatus.Succeeded)
            {
                throw new InvalidOperationException($"execution {execution.Id} ended {execution.Status}: {execution.Error}");
            }

            var accepted = trace.Webhook().OccurredAt;
            latencies[i] = (execution.EndTimestamp!.Value - accepted).TotalMilliseconds;
            lock (latencies)
            {
                lastEnd = execution.EndTimestamp.Value > lastEnd ? execution.EndTimestamp.Value : lastEnd;
                firstStart = accepted < firstStart ? accepted : firstStart;
            }
        });

        Array.Sort(latencies);
        return new RunStats(Percentile(latencies, 50), Percentile(latencies, 90), Percentile(latencies, 99), latencies[^1], count / (lastEnd - firstStart).TotalSeconds, latencies);
    }
}
