using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Cli.Serve;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// What authentication costs a webhook: time to 202 Accepted over real HTTP into a storm serve stack on Azurite,
/// with authentication off (as --no-auth), with an API key, and with a GitHub-signed body. The variants are measured
/// in interleaved rounds at the same concurrency on the same server, so they share the machine's conditions; then the
/// gateway's authentication alone is timed in process.
/// </summary>
internal static class AuthBenchmark
{
    private const string Secret = "a webhook secret for the benchmark";

    public static async Task<int> RunAsync(string[] args)
    {
        var requests = Args.Int(args, "--requests", 6000);
        var concurrency = Args.Int(args, "--concurrency", 16);
        var rounds = Args.Int(args, "--rounds", 12);
        using var packs = new TempPacks().WithPack("bench");
        packs.Write("bench/rules/plain.yaml", "name: plain\ntrigger: {type: core.st2.webhook, parameters: {url: plain}}\naction: {ref: core.noop}\n");
        packs.Write("bench/rules/signed.yaml", "name: signed\ntrigger: {type: core.st2.webhook, parameters: {url: signed}}\naction: {ref: core.noop}\n");
        packs.Write("bench/webhooks/signed.yaml", "url: signed\nverify: {scheme: github, secret: bench_secret}\n");

        var data = Path.Combine(Path.GetTempPath(), "storm-bench-auth-" + Guid.NewGuid().ToString("N")[..8]);
        await using var removed = new RemovedAtTheEnd(data); // declared first, so it goes after the server and Azurite
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data);
        await using var server = await StormServer.StartAsync(new ServeSettings
        {
            Port = AzuriteFixture.FreePort(),
            PacksPath = packs.Root,
            StorageConnectionString = azurite.Endpoints.ConnectionString,
            AuditJournalDirectory = Path.Combine(data, "journal"),
            CredentialsFile = ServerClients.CredentialsFile,
        }, logging => logging.SetMinimumLevel(LogLevel.Error).AddSimpleConsole());
        await server.Services.GetRequiredService<KeyValueService>().SetAsync("system", "bench_secret", Secret, secret: true, ttl: null, CancellationToken.None);
        // One server for every variant, so they differ in nothing but authentication: "no auth" switches it off
        // (as --no-auth does) for its own rounds only.
        var auth = server.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AuthOptions>>().Value;
        using var anonymous = new HttpClient { BaseAddress = new Uri(server.Url) };
        using var keyed = ServerClients.For(server);

        Console.WriteLine($"Azurite on ports {string.Join(", ", azurite.Endpoints.Ports)}; {requests} webhooks per variant in {rounds} interleaved rounds at concurrency {concurrency}; machine: {Environment.ProcessorCount} cores");
        var variants = new (string Name, HttpClient Client, bool Auth, Func<int, HttpRequestMessage> Request)[]
        {
            ("no auth (--no-auth)", anonymous, false, n => Post("plain", n, delivery: false)),
            ("API key (St2-Api-Key)", keyed, true, n => Post("plain", n, delivery: false)),
            ("API key, with a delivery id", keyed, true, n => Post("plain", n, delivery: true)),
            ("HMAC-signed body (GitHub), with its delivery id", anonymous, true, Signed),
        };
        var latencies = variants.Select(_ => new List<double>()).ToArray();
        var perRound = requests / rounds;
        foreach (var v in Enumerable.Range(0, variants.Length))
        {
            auth.Enabled = variants[v].Auth;
            await RoundAsync(variants[v].Client, variants[v].Name, variants[v].Request, 10_000_000 + v * 1000, 200, concurrency, null); // warm-up, not counted
        }

        for (var round = 0; round < rounds; round++)
        {
            // A different variant goes first each round, so none always meets the machine in the same state.
            foreach (var v in Enumerable.Range(0, variants.Length).Select(i => (i + round) % variants.Length))
            {
                auth.Enabled = variants[v].Auth;
                await RoundAsync(variants[v].Client, variants[v].Name, variants[v].Request, (round + 1) * 1_000_000 + v * 100_000, perRound, concurrency, latencies[v]);
            }

            Console.Error.WriteLine($"  round {round + 1}/{rounds} done");
        }

        auth.Enabled = true;
        Console.WriteLine();
        Console.WriteLine($"| webhook accepted (c{concurrency}) | requests | p50 ms | p99 ms | p50 added by authentication |");
        Console.WriteLine("|---|---|---|---|---|");
        // A delivery id costs a storage round trip (it makes redeliveries idempotent), so each variant is set against
        // the one that differs from it only in authentication.
        int[] baselines = [-1, 0, -1, 2];
        for (var v = 0; v < variants.Length; v++)
        {
            var sorted = Sorted(latencies[v]);
            var delta = baselines[v] < 0 ? "—" : FormattableString.Invariant($"{(LatencyBenchmark.Percentile(sorted, 50) - LatencyBenchmark.Percentile(Sorted(latencies[baselines[v]]), 50)) * 1000:+0;-0} µs over {variants[baselines[v]].Name}");
            Console.WriteLine(FormattableString.Invariant($"| {variants[v].Name} | {sorted.Length} | {LatencyBenchmark.Percentile(sorted, 50):0.000} | {LatencyBenchmark.Percentile(sorted, 99):0.000} | {delta} |"));
        }

        await InProcessAsync(server);
        return 0;
    }

    private sealed class RemovedAtTheEnd(string path) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }

            return ValueTask.CompletedTask;
        }
    }

    private static HttpRequestMessage Post(string hook, int n, bool delivery)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/webhooks/{hook}") { Content = new StringContent($$"""{"n": {{n}}}""", Encoding.UTF8, "application/json") };
        if (delivery)
        {
            request.Headers.Add("X-GitHub-Delivery", $"bench-{n}-{Guid.NewGuid():N}");
        }

        return request;
    }

    private static HttpRequestMessage Signed(int n)
    {
        var request = Post("signed", n, delivery: true);
        request.Headers.Add("X-Hub-Signature-256", "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), Encoding.UTF8.GetBytes($$"""{"n": {{n}}}"""))));
        return request;
    }

    private static async Task RoundAsync(HttpClient client, string name, Func<int, HttpRequestMessage> build, int offset, int count, int concurrency, List<double>? into)
    {
        var requests = Enumerable.Range(offset, count).Select(build).ToArray(); // built (and signed) before the clock runs
        var next = -1;
        var measured = new double[count];
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await client.SendAsync(requests[i]);
                measured[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if ((int)response.StatusCode != 202)
                {
                    throw new InvalidOperationException($"{name}: HTTP {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
        }));
        foreach (var request in requests)
        {
            request.Dispose();
        }

        into?.AddRange(measured);
    }

    private static double[] Sorted(List<double> values)
    {
        var sorted = values.ToArray();
        Array.Sort(sorted);
        return sorted;
    }

    /// <summary>The authenticator alone, in process, one caller at a time: the cost of proving who sent a request.</summary>
    private static async Task InProcessAsync(StormServer server)
    {
        var authenticator = server.Services.GetRequiredService<ApiAuthenticator>();
        var key = (await server.Services.GetRequiredService<CredentialService>().CreateApiKeyAsync("bench", null, CancellationToken.None)).Key;
        var body = Encoding.UTF8.GetBytes("""{"n": 1}""");
        var keyed = new ApiRequest { Method = "POST", Path = "/api/v1/webhooks/plain", Headers = [KeyValuePair.Create("St2-Api-Key", key)], Body = body };
        var signed = new ApiRequest
        {
            Method = "POST",
            Path = "/api/v1/webhooks/signed",
            Headers = [KeyValuePair.Create("X-Hub-Signature-256", "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), body)))],
            Body = body,
        };
        async Task<double> MicrosecondsAsync(ApiRequest request, string? hook)
        {
            const int iterations = 100_000;
            for (var i = 0; i < 1_000; i++)
            {
                await authenticator.AuthenticateAsync(request, RouteAuth.Webhook, CancellationToken.None, hook);
            }

            var started = Stopwatch.GetTimestamp();
            for (var i = 0; i < iterations; i++)
            {
                if ((await authenticator.AuthenticateAsync(request, RouteAuth.Webhook, CancellationToken.None, hook)).Caller is null)
                {
                    throw new InvalidOperationException("the benchmark's own credential was refused");
                }
            }

            return Stopwatch.GetElapsedTime(started).TotalMicroseconds / iterations;
        }

        Console.WriteLine();
        Console.WriteLine("| authentication alone (in process, one caller) | µs per request |");
        Console.WriteLine("|---|---|");
        Console.WriteLine(FormattableString.Invariant($"| API key (SHA-512 of the key, cached lookup) | {await MicrosecondsAsync(keyed, "plain"):0.00} |"));
        Console.WriteLine(FormattableString.Invariant($"| GitHub signature (HMAC-SHA256 of the body, cached secret) | {await MicrosecondsAsync(signed, "signed"):0.00} |"));
    }
}
