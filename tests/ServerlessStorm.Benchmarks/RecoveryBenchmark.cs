using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// What a crash costs, with real storm serve processes on Azurite, per transport: (1) the time from a SIGKILL, right
/// after a burst of webhooks was accepted, to every accepted delivery acted on (the restart included); (2) the kill
/// loop: webhooks with delivery ids at a concurrency, re-sent until answered 202, while the server is SIGKILLed at
/// random moments and restarted; (3) on the in-process transport, how many webhooks are accepted while storage hangs
/// (Azurite SIGSTOPped), and the server's memory meanwhile.
/// </summary>
internal static class RecoveryBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var deliveries = Args.Int(args, "--deliveries", 2000);
        var kills = Args.Int(args, "--kills", 5);
        var concurrency = Args.Int(args, "--concurrency", 32);
        var burst = Args.Int(args, "--burst", 300);
        var hangSeconds = Args.Int(args, "--hang-seconds", 15);
        var transports = Args.Text(args, "--transport", "in-process,storage-queue").Split(',');

        var azurite = new AzuriteFixture();
        await azurite.InitializeAsync();
        var journal = Path.Combine(Path.GetTempPath(), "storm-bench-recovery-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Console.WriteLine($"machine: {Environment.ProcessorCount} cores; kill loop {deliveries} webhooks, {kills} SIGKILLs, concurrency {concurrency}; burst {burst}");
            var rows = new List<string>();
            foreach (var transport in Array.IndexOf(args, "--hang-only") >= 0 ? [] : transports)
            {
                var baseline = await KillAfterBurstAsync(Server(azurite, journal, transport), burst, concurrency, kill: false);
                Console.WriteLine($"[{transport}] no kill, {burst} accepted: all acted on {baseline.Total.TotalSeconds:F1} s after the last 202; {baseline.Result}");
                var recovery = await KillAfterBurstAsync(Server(azurite, journal, transport), burst, concurrency, kill: true);
                Console.WriteLine($"[{transport}] SIGKILL after {burst} accepted: all acted on {recovery.Total.TotalSeconds:F1} s after the kill " +
                    $"(restart {recovery.Restart.TotalSeconds:F1} s, then {(recovery.Total - recovery.Restart).TotalSeconds:F1} s); {recovery.Result}");
                var loop = await KillLoop.RunAsync(Server(azurite, journal, transport), deliveries, kills, concurrency, TimeSpan.FromMinutes(5),
                    progress: line => Console.WriteLine($"[{transport}] {line}"), seed: 17);
                Console.WriteLine($"[{transport}] kill loop: {loop}");
                rows.Add($"| {transport} | {baseline.Total.TotalSeconds:F1} s | {recovery.Total.TotalSeconds:F1} s ({recovery.Restart.TotalSeconds:F1} s restart) | {loop.Accepted} | {loop.ActedOnce} | {loop.Lost} | {loop.Duplicated} | {loop.RunAgain} | {loop.SettledAfterLastRestart.TotalSeconds:F1} s |");
            }

            if (transports.Contains("in-process"))
            {
                await StorageHangAsync(azurite, Server(azurite, journal, "in-process"), concurrency, TimeSpan.FromSeconds(hangSeconds));
            }

            Console.WriteLine();
            Console.WriteLine($"| transport | {burst} accepted, no kill: last 202 to all acted on | SIGKILL after {burst} accepted: kill to all acted on | kill loop: accepted | acted on once | lost | duplicated | run again | settled after last restart |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
            rows.ForEach(Console.WriteLine);
            return 0;
        }
        finally
        {
            await azurite.DisposeAsync();
            try
            {
                Directory.Delete(journal, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static Func<Task<StormProcess>> Server(AzuriteFixture azurite, string journal, string transport)
    {
        var storage = azurite.NewStorageOptions();
        var port = AzuriteFixture.FreePort().ToString(CultureInfo.InvariantCulture);
        var environment = new Dictionary<string, string> { ["Storage__Prefix"] = storage.Prefix, ["Logging__LogLevel__Default"] = "Warning" };
        return () => StormProcess.ServeAsync(environment, "--port", port, "--storage", azurite.ConnectionString, "--audit-journal", journal, "--transport", transport);
    }

    private static async Task<(TimeSpan Total, TimeSpan Restart, KillLoopResult Result)> KillAfterBurstAsync(Func<Task<StormProcess>> start, int count, int concurrency, bool kill)
    {
        var server = await start();
        using var http = StormProcess.NewHttpClient();
        var run = Guid.NewGuid().ToString("N")[..8];
        var ids = Enumerable.Range(0, count).Select(i => $"burst-{run}-{i:D5}").ToList();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, $"{server.Url}/api/v1/webhooks/ping") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
                request.Headers.Add("X-Delivery-Id", ids[i]);
                using var answer = await http.SendAsync(request);
                if (answer.StatusCode != HttpStatusCode.Accepted)
                {
                    throw new InvalidOperationException($"{ids[i]}: {answer.StatusCode}");
                }
            }
        })));

        var clock = Stopwatch.StartNew();
        var restart = TimeSpan.Zero;
        if (kill)
        {
            await server.KillAsync();
            clock.Restart();
            await server.DisposeAsync();
            server = await start();
            restart = clock.Elapsed;
        }

        try
        {
            var result = await KillLoop.WaitForAllActedOnAsync(server, http, ids, TimeSpan.FromMinutes(5), clock);
            return (clock.Elapsed, restart, result);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private static async Task StorageHangAsync(AzuriteFixture azurite, Func<Task<StormProcess>> start, int concurrency, TimeSpan hang)
    {
        await using var server = await start();
        using var http = StormProcess.NewHttpClient();
        http.Timeout = TimeSpan.FromSeconds(10);
        var run = Guid.NewGuid().ToString("N")[..8];
        async Task<(int Accepted, int Failed, double P99)> SendForAsync(TimeSpan period)
        {
            var accepted = 0;
            var failed = 0;
            var latencies = new System.Collections.Concurrent.ConcurrentBag<double>();
            var next = 0;
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                while (clock.Elapsed < period)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, $"{server.Url}/api/v1/webhooks/ping") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
                    request.Headers.Add("X-Delivery-Id", $"hang-{run}-{Interlocked.Increment(ref next):D6}");
                    var sent = Stopwatch.GetTimestamp();
                    try
                    {
                        using var answer = await http.SendAsync(request);
                        if (answer.StatusCode == HttpStatusCode.Accepted)
                        {
                            Interlocked.Increment(ref accepted);
                        }
                        else
                        {
                            Interlocked.Increment(ref failed);
                        }

                        latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                    }
                    catch (TaskCanceledException)
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
            })));
            var sorted = latencies.Order().ToArray();
            return (accepted, failed, sorted.Length == 0 ? 0 : sorted[(int)(sorted.Length * 0.99)]);
        }

        var idle = server.ResidentBytes();
        var before = await SendForAsync(TimeSpan.FromSeconds(5));
        Console.WriteLine($"[in-process] storage up: {before.Accepted / 5.0:F0} webhooks/s accepted (p99 {before.P99:F1} ms), {before.Failed} refused or unanswered; server memory {idle / (1024 * 1024)} MB idle, {server.ResidentBytes() / (1024 * 1024)} MB after");
        (int Accepted, int Failed, double P99) during;
        long rss;
        await using (await azurite.SuspendAsync())
        {
            during = await SendForAsync(hang);
            rss = server.ResidentBytes();
        }

        Console.WriteLine($"[in-process] storage hung (SIGSTOP) {hang.TotalSeconds:F0} s: {during.Accepted / hang.TotalSeconds:F0} webhooks/s accepted (p99 {during.P99:F1} ms), " +
            $"{during.Failed} refused or unanswered; server memory {rss / (1024 * 1024)} MB with {during.Accepted} deliveries' audit unstored");
    }
}
