using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Testing;

/// <summary>What a kill loop saw: how many deliveries were sent and accepted, and what became of the accepted ones.</summary>
public sealed record KillLoopResult(int Sent, int Accepted, int ActedOnce, int Lost, int Duplicated, int RunAgain, int Kills, TimeSpan SettledAfterLastRestart, TimeSpan Elapsed)
{
    /// <summary>Accepted deliveries not acted on by the deadline, by id (empty when none was lost).</summary>
    public IReadOnlyList<string> LostIds { get; init; } = [];

    public override string ToString() =>
        $"sent {Sent}, accepted {Accepted}, acted on once {ActedOnce}, lost {Lost}, duplicated {Duplicated}, run again after a kill {RunAgain}, " +
        $"kills {Kills}, settled {SettledAfterLastRestart.TotalSeconds:F1} s after the last restart, {Elapsed.TotalSeconds:F1} s in all" +
        (LostIds.Count > 0 ? $"; lost: {string.Join(", ", LostIds.Take(10))}" : "");
}

/// <summary>
/// The crash test a sender's eye sees: webhooks with delivery ids posted at a concurrency to the <c>ping</c> hook (its rule
/// runs core.noop), each re-sent until it is answered 202, while the server is SIGKILLed and restarted on the same port;
/// then, after the last restart, every accepted delivery must have exactly one execution, finished, within a deadline.
/// "Run again" counts executions whose log shows them running twice (taken over after their worker was killed).
/// </summary>
public static class KillLoop
{
    public static async Task<KillLoopResult> RunAsync(
        Func<Task<StormProcess>> start,
        int deliveries,
        int kills,
        int concurrency,
        TimeSpan deadline,
        Action<string>? progress = null,
        int? seed = null)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var random = seed is { } s ? new Random(s) : new Random();
        var clock = Stopwatch.StartNew();
        var server = await start();
        var serverLock = new SemaphoreSlim(1, 1);
        using var http = StormProcess.NewHttpClient();
        http.Timeout = TimeSpan.FromSeconds(10);
        var accepted = new ConcurrentDictionary<string, byte>();
        var sent = 0;
        var next = -1;

        // The kills fall at random points of the sending, one per stretch of deliveries.
        var killAt = kills == 0 ? [] : Enumerable.Range(0, kills).Select(k => (k * deliveries / kills) + random.Next(deliveries / kills / 4, Math.Max(deliveries / kills / 4 + 1, deliveries / kills * 3 / 4))).ToArray();
        var killsDone = 0;

        async Task SendAsync()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < deliveries)
            {
                var id = $"kl-{run}-{i:D5}";
                Interlocked.Increment(ref sent);
                while (true)
                {
                    var url = server.Url;
                    try
                    {
                        using var request = new HttpRequestMessage(HttpMethod.Post, $"{url}/api/v1/webhooks/ping")
                        {
                            Content = new StringContent($$"""{"n": {{i}}}""", Encoding.UTF8, "application/json"),
                        };
                        request.Headers.Add("X-Delivery-Id", id);
                        using var answer = await http.SendAsync(request);
                        if (answer.StatusCode == HttpStatusCode.Accepted)
                        {
                            accepted[id] = 0;
                            break;
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                    {
                        // The server is down or restarting: the sender tries again, as webhook senders do.
                    }

                    await Task.Delay(50);
                }

                var k = Volatile.Read(ref killsDone);
                if (k < kills && accepted.Count >= killAt[k])
                {
                    await KillAndRestartAsync(k);
                }
            }
        }

        var lastRestart = TimeSpan.Zero;
        async Task KillAndRestartAsync(int k)
        {
            await serverLock.WaitAsync();
            try
            {
                if (Volatile.Read(ref killsDone) != k)
                {
                    return; // another sender got there first
                }

                await server.KillAsync();
                await server.DisposeAsync();
                Interlocked.Increment(ref killsDone);
                progress?.Invoke($"kill {k + 1}/{kills} after {accepted.Count} accepted");
                server = await start();
                lastRestart = clock.Elapsed;
            }
            finally
            {
                serverLock.Release();
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(SendAsync)));
        progress?.Invoke($"all {deliveries} sent; {accepted.Count} accepted; waiting for every one to be acted on");

        try
        {
            var settled = await WaitForAllActedOnAsync(server, http, accepted.Keys.ToList(), clock.Elapsed + deadline, clock, progress);
            return settled with { Sent = sent, Kills = killsDone, SettledAfterLastRestart = settled.Elapsed - lastRestart };
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    /// <summary>Polls the traces of <paramref name="ids"/> until each has a finished execution or the deadline passes.</summary>
    public static async Task<KillLoopResult> WaitForAllActedOnAsync(StormProcess server, HttpClient http, IReadOnlyList<string> ids, TimeSpan deadline, Stopwatch clock, Action<string>? progress = null)
    {
        var open = new SortedSet<string>(ids, StringComparer.Ordinal); // in sending order: the queues are roughly first in, first out
        var once = 0;
        var duplicated = 0;
        var runAgain = 0;
        var lastReport = TimeSpan.Zero;
        var gate = new Lock();
        while (open.Count > 0 && clock.Elapsed < deadline)
        {
            // A few reads at a time, so the checking does not crowd out the work it waits for (the audit's storage
            // serves both).
            await Parallel.ForEachAsync(open.Take(256).ToList(), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (id, _) =>
            {
                var executions = (await TryGetTraceAsync(http, server.Url, id))?["executions"] as JsonArray;
                if (executions is null || executions.Count == 0 || executions.Any(e => !IsFinished(e?["status"]?.GetValue<string>())))
                {
                    return;
                }

                lock (gate)
                {
                    open.Remove(id);
                    if (executions.Count == 1 && executions[0]?["status"]?.GetValue<string>() == "succeeded")
                    {
                        once++;
                    }
                    else
                    {
                        duplicated++;
                    }

                    if (executions.Any(e => (e?["log"] as JsonArray)?.Count(l => l?["status"]?.GetValue<string>() == "running") > 1))
                    {
                        runAgain++;
                    }
                }
            });

            if (open.Count > 0)
            {
                if (clock.Elapsed - lastReport > TimeSpan.FromSeconds(5))
                {
                    lastReport = clock.Elapsed;
                    progress?.Invoke($"{ids.Count - open.Count}/{ids.Count} acted on");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200));
            }
        }

        return new KillLoopResult(ids.Count, ids.Count, once, open.Count, duplicated, runAgain, 0, TimeSpan.Zero, clock.Elapsed) { LostIds = [.. open.Order()] };
    }

    private static async Task<JsonObject?> TryGetTraceAsync(HttpClient http, string url, string traceTag)
    {
        try
        {
            using var answer = await http.GetAsync($"{url}/api/v1/traces/{Uri.EscapeDataString(traceTag)}");
            return answer.IsSuccessStatusCode ? JsonNode.Parse(await answer.Content.ReadAsStringAsync()) as JsonObject : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    private static bool IsFinished(string? status) => status is "succeeded" or "failed" or "timeout" or "canceled" or "abandoned";
}
