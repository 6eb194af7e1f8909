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
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// A python-script no-op beside core.noop and core.local (<c>true</c>) through one storm serve (HTTP API, in-process
/// bus, runner, the audit in memory so that the runners' cost shows): executions/s at a concurrency, and the
/// one-at-a-time latency from the execution's request to its end (the audit's own timestamps).
/// </summary>
internal static class PythonBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var requests = Args.Int(args, "--requests", 200);
        var sequential = Args.Int(args, "--sequential", 100);
        var concurrency = Args.Int(args, "--concurrency", 8);
        // The interpreter matters: a pyenv-built python3 on PATH starts several times slower than the distribution's.
        var python = Args.Text(args, "--python", "/usr/bin/python3");
        using var packs = new TempPacks().WithRepositoryCore().WithPack("bench");
        packs.Write("bench/actions/noop.py", "from st2common.runners.base_action import Action\n\n\nclass Noop(Action):\n    def run(self):\n        return None\n");
        packs.Write("bench/actions/noop.yaml", "name: noop\nrunner_type: python-script\nentry_point: noop.py\n");

        var data = Path.Combine(Path.GetTempPath(), "storm-bench-python-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data);
        await using var server = await StormServer.StartAsync(new ServeSettings
        {
            Port = AzuriteFixture.FreePort(),
            PacksPath = packs.Root,
            Transport = ServeSettings.Transports.InProcess,
            StorageConnectionString = azurite.Endpoints.ConnectionString,
            InMemoryAudit = true,
            AuditJournalDirectory = Path.Combine(data, "journal"),
            CredentialsFile = ServerClients.CredentialsFile,
            Configuration = new Dictionary<string, string?> { ["Storm:Python:Interpreter"] = python },
        }, logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());
        var audit = server.Services.GetRequiredService<IAuditStore>();
        using var http = ServerClients.For(server);

        Console.WriteLine($"machine: {Environment.ProcessorCount} cores; Python: {python}; {requests} executions at concurrency {concurrency} for executions/s, {sequential} one at a time for latency");
        Console.WriteLine();
        Console.WriteLine($"| action | executions/s (c{concurrency}) | sequential p50 ms | sequential p90 ms | sequential p99 ms |");
        Console.WriteLine("|---|---|---|---|---|");
        (string Ref, JsonObject Parameters)[] actions =
            [("bench.noop", []), ("core.noop", []), ("core.local", new JsonObject { ["cmd"] = "true" })];
        foreach (var (action, parameters) in actions)
        {
            await MeasureAsync(http, audit, action, parameters, 20, 4);
            var seq = await MeasureAsync(http, audit, action, parameters, sequential, 1);
            var load = await MeasureAsync(http, audit, action, parameters, requests, concurrency);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {action} | {load.PerSecond:0} | {seq.P50:0.0} | {seq.P90:0.0} | {seq.P99:0.0} |"));
        }

        Directory.Delete(data, recursive: true);
        return 0;
    }

    private static async Task<LatencyBenchmark.RunStats> MeasureAsync(HttpClient http, IAuditStore audit, string action, JsonObject parameters, int count, int parallelism)
    {
        var latencies = new double[count];
        var next = -1;
        var started = DateTimeOffset.UtcNow;
        await Task.WhenAll(Enumerable.Range(0, parallelism).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var body = new JsonObject { ["action"] = action, ["parameters"] = parameters.DeepClone() }.ToJsonString();
                using var response = await http.PostAsync("/api/v1/executions", new StringContent(body, Encoding.UTF8, "application/json"));
                response.EnsureSuccessStatusCode();
                var id = (await response.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
                var done = await Eventually.ReturnsAsync(() => audit.GetExecutionAsync(id, CancellationToken.None),
                    e => e is not null && ExecutionStatus.IsTerminal(e.Status), TimeSpan.FromMinutes(2));
                if (done!.Status != ExecutionStatus.Succeeded)
                {
                    throw new InvalidOperationException($"{action} execution {id} ended {done.Status}: {done.Error}");
                }

                latencies[i] = (done.EndTimestamp!.Value - done.StartTimestamp).TotalMilliseconds;
            }
        }));
        var elapsed = (DateTimeOffset.UtcNow - started).TotalSeconds;
        Array.Sort(latencies);
        return new LatencyBenchmark.RunStats(LatencyBenchmark.Percentile(latencies, 50), LatencyBenchmark.Percentile(latencies, 90),
            LatencyBenchmark.Percentile(latencies, 99), latencies[^1], count / elapsed, latencies);
    }
}
