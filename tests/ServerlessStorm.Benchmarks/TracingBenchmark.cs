using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Cli.Serve;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// What tracing costs: executions/s and the webhook-to-finished p50 of storm serve (HTTP in, in-process bus, audit in
/// memory so storage does not drown the difference) with tracing off, on with nothing exporting (every span of the
/// engine created and recorded by a listener), and exporting traces, metrics and logs over OTLP/HTTP to a local
/// stand-in collector, in one run, the modes taking turns over several rounds (medians reported).
/// </summary>
internal static class TracingBenchmark
{
    private enum Mode
    {
        Off,
        OnNoExporter,
        Otlp,
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var requests = Args.Int(args, "--requests", 2000);
        var concurrency = Args.Int(args, "--concurrency", 16);
        var rounds = Args.Int(args, "--rounds", 3);
        var data = Directory.CreateTempSubdirectory("storm-bench-tracing-").FullName;
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), Path.Combine(data, "azurite"), inMemory: true);
        using var collector = new OtlpCollector();
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores; {requests} ping webhooks at concurrency {concurrency} per measurement; {rounds} rounds, the modes in turn; audit in memory");
        Console.WriteLine();

        var results = Enum.GetValues<Mode>().ToDictionary(m => m, _ => new List<LatencyBenchmark.RunStats>());
        for (var round = 0; round < rounds; round++)
        {
            var order = Enum.GetValues<Mode>().ToList();
            order = [.. order.Skip(round % order.Count), .. order.Take(round % order.Count)];
            foreach (var mode in order)
            {
                results[mode].Add(await MeasureAsync(mode, azurite.Endpoints.ConnectionString, data, collector, requests, concurrency, $"round {round + 1}, {mode}"));
            }
        }

        Console.WriteLine("| tracing | executions/s (median) | webhook → finished p50 ms (median) | p99 ms (median) | vs off, executions/s |");
        Console.WriteLine("|---|---|---|---|---|");
        var off = Median(results[Mode.Off].Select(r => r.PerSecond));
        foreach (var (mode, runs) in results)
        {
            var rate = Median(runs.Select(r => r.PerSecond));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Label(mode)} | {rate:0} | {Median(runs.Select(r => r.P50)):0.0} | {Median(runs.Select(r => r.P99)):0.0} | {(rate / off - 1) * 100:+0.0;-0.0}% |"));
        }

        Console.WriteLine();
        Console.WriteLine($"the stand-in collector took {collector.Requests} OTLP requests, {collector.Bytes / 1024} KiB");
        Directory.Delete(data, recursive: true);
        return 0;
    }

    private static string Label(Mode mode) => mode switch
    {
        Mode.Off => "off",
        Mode.OnNoExporter => "on, no exporter",
        _ => "exporting over OTLP/HTTP",
    };

    private static double Median(IEnumerable<double> values) => LatencyBenchmark.Percentile([.. values.Order()], 50);

    private static async Task<LatencyBenchmark.RunStats> MeasureAsync(Mode mode, string storage, string data, OtlpCollector collector, int requests, int concurrency, string label)
    {
        using var listener = mode == Mode.OnNoExporter ? new SpanSink() : null;
        string[] variables = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"];
        if (mode == Mode.Otlp)
        {
            Environment.SetEnvironmentVariable(variables[0], collector.Url);
            Environment.SetEnvironmentVariable(variables[1], "http/protobuf");
        }

        try
        {
            await using var server = await StormServer.StartAsync(new ServeSettings
            {
                Port = AzuriteFixture.FreePort(),
                PacksPath = RepositoryPaths.Packs,
                StorageConnectionString = storage,
                InMemoryAudit = true,
                AuditJournalDirectory = Path.Combine(data, "journal"),
                CredentialsFile = ServerClients.CredentialsFile,
            }, logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());
            var audit = server.Services.GetRequiredService<IAuditStore>();
            using var http = ServerClients.For(server);
            await LatencyBenchmark.MeasureAsync(http, audit, 200, concurrency, $"{label} warm-up");
            return await LatencyBenchmark.MeasureAsync(http, audit, requests, concurrency, label);
        }
        finally
        {
            foreach (var variable in variables)
            {
                Environment.SetEnvironmentVariable(variable, null);
            }
        }
    }

    /// <summary>Tracing on with nothing exporting: every span of the engine sampled and recorded, then dropped.</summary>
    private sealed class SpanSink : IDisposable
    {
        private readonly ActivityListener _listener = new()
        {
            ShouldListenTo = source => source.Name == StormTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };

        public SpanSink() => ActivitySource.AddActivityListener(_listener);

        public void Dispose() => _listener.Dispose();
    }
}
