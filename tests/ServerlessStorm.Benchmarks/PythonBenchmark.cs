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
/// A python-script no-op action beside core.noop and core.local (<c>true</c>), in one run through storm serve: each
/// execution is requested over the API and its latency is the audit's own reading, from its start (requested) to
/// its end. The Python action starts a new interpreter per execution, as StackStorm's runner does.
/// </summary>
internal static class PythonBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var requests = Args.Int(args, "--requests", 300);
        var concurrency = Args.Int(args, "--concurrency", 8);
        using var packs = new TempPacks().WithPack("bench").WithRepositoryCore();
        packs.Write("bench/actions/python_noop.yaml", "name: python_noop\nrunner_type: python-script\nentry_point: python_noop.py\nparameters: {}\n");
        packs.Write("bench/actions/python_noop.py", "from st2common.runners.base_action import Action\n\n\nclass NoopAction(Action):\n    def run(self, **kwargs):\n        return None\n");

        var data = Path.Combine(Path.GetTempPath(), "storm-bench-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data);
        await using var server = await StormServer.StartAsync(new ServeSettings
        {
            Port = AzuriteFixture.FreePort(),
            PacksPath = packs.Root,
            StorageConnectionString = azurite.Endpoints.ConnectionString,
            AuditJournalDirectory = Path.Combine(data, "journal"),
            CredentialsFile = ServerClients.CredentialsFile,
        }, logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());
        var audit = server.Services.GetRequiredService<IAuditStore>();
        using var http = ServerClients.For(server);

        Console.WriteLine($"{requests} executions per run; machine: {Environment.ProcessorCount} cores; storm serve, in-process bus, audit in Azurite");
        Console.WriteLine();
        Console.WriteLine("| action | mode | executions | p50 ms | p90 ms | p99 ms | max ms | executions/s |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        (string Action, JsonObject Parameters)[] actions =
        [
            ("core.noop", []),
            ("core.local", new JsonObject { ["cmd"] = "true" }),
            ("bench.python_noop", []),
        ];
        foreach (var (action, parameters) in actions)
        {
            await MeasureAsync(http, audit, action, parameters, 20, 4);
            foreach (var parallelism in new[] { 1, concurrency })
            {
                var stats = await MeasureAsync(http, audit, action, parameters, requests, parallelism);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {action} | {(parallelism == 1 ? "sequential" : $"concurrency {parallelism}")} | {requests} | {stats.P50:0.0} | {stats.P90:0.0} | {stats.P99:0.0} | {stats.Max:0.0} | {stats.PerSecond:0} |"));
            }
        }

        Directory.Delete(data, recursive: true);
        return 0;
    }

    private static async Task<LatencyBenchmark.RunStats> MeasureAsync(HttpClient http, IAuditStore audit, string action, JsonObject parameters, int count, int parallelism)
    {
        var body = new JsonObject { ["action"] = action, ["parameters"] = parameters.DeepClone() }.ToJsonString();
        var latencies = new double[count];
        var next = -1;
        var first = DateTimeOffset.MaxValue;
        var last = DateTimeOffset.MinValue;
        await Task.WhenAll(Enumerable.Range(0, parallelism).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                using var response = await http.PostAsync("/api/v1/executions", new StringContent(body, Encoding.UTF8, "application/json"));
                response.EnsureSuccessStatusCode();
                var id = (await response.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
                var execution = await Eventually.ReturnsAsync(() => audit.GetExecutionAsync(id, CancellationToken.None),
                    e => e is not null && ExecutionStatus.IsTerminal(e.Status), TimeSpan.FromMinutes(2), $"{action} execution {id} to finish");
                if (execution!.Status != ExecutionStatus.Succeeded)
                {
                    throw new InvalidOperationException($"{action} execution {id} ended {execution.Status}: {execution.Error}");
                }

                latencies[i] = (execution.EndTimestamp!.Value - execution.StartTimestamp).TotalMilliseconds;
                lock (latencies)
                {
                    first = execution.StartTimestamp < first ? execution.StartTimestamp : first;
                    last = execution.EndTimestamp.Value > last ? execution.EndTimestamp.Value : last;
                }
            }
        }));

        Array.Sort(latencies);
        return new LatencyBenchmark.RunStats(LatencyBenchmark.Percentile(latencies, 50), LatencyBenchmark.Percentile(latencies, 90),
            LatencyBenchmark.Percentile(latencies, 99), latencies[^1], count / (last - first).TotalSeconds, latencies);
    }
}
