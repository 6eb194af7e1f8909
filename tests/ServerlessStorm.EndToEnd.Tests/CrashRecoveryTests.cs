using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Azure.Storage.Queues;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Cli.Serve;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;
using Xunit.Abstractions;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>
/// A 202 is a promise: real storm serve processes, SIGKILLed while webhooks arrive, act on every accepted delivery
/// exactly once on both transports; a consumer killed mid-action has its execution taken over within the lease; poison
/// messages are dead-lettered with their reason while good ones flow; dead letters replay; and webhooks are accepted
/// while storage hangs.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class CrashRecoveryTests(AzuriteFixture azurite, ITestOutputHelper output) : IDisposable
{
    private readonly string _journal = Path.Combine(Path.GetTempPath(), $"storm-crash-{Guid.NewGuid():N}");
    private readonly TempPacks _packs = new TempPacks().WithPack("slow");

    public void Dispose()
    {
        _packs.Dispose();
        try
        {
            Directory.Delete(_journal, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    [Theory]
    [InlineData("in-process")]
    [InlineData("storage-queue")]
    public async Task KillLoop_EveryAcceptedDeliveryIsActedOnExactlyOnce(string transport)
    {
        var start = Server(transport, out _);
        var result = await KillLoop.RunAsync(start, deliveries: 300, kills: 3, concurrency: 16, deadline: TimeSpan.FromSeconds(120), progress: output.WriteLine);
        output.WriteLine(result.ToString());

        Assert.Equal(3, result.Kills);
        Assert.Equal(300, result.Accepted);
        Assert.True(result.Lost == 0, result.ToString());
        Assert.Equal(0, result.Duplicated);
        Assert.Equal(300, result.ActedOnce);
    }

    [Fact]
    public async Task ConsumerKilledMidAction_StorageQueues_ItsExecutionIsTakenOverWithinTheLease_AndRunsOnce()
    {
        _packs.Write("slow/rules/nap.yaml", """
            name: nap
            pack: slow
            enabled: true
            trigger: {type: core.st2.webhook, parameters: {url: nap}}
            action: {ref: core.local, parameters: {cmd: "sleep 3 && echo rested", timeout: 600}}
            """);
        var start = Server("storage-queue", out _, packs: true);
        using var http = StormProcess.NewHttpClient();
        var server = await start();
        try
        {
            var accepted = await http.PostAsync($"{server.Url}/api/v1/webhooks/nap", Json("""{"n": 1}"""));
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            var trace = (await accepted.Content.ReadAsStringAsync()).Contains("trace_tag", StringComparison.Ordinal)
                ? JsonNode.Parse(await accepted.Content.ReadAsStringAsync())!["trace_tag"]!.GetValue<string>() : throw new InvalidOperationException("no trace tag");
            await Eventually.ReturnsAsync(() => ExecutionStatusAsync(http, server.Url, trace), s => s == "running", TimeSpan.FromSeconds(60), "the action running");

            // The worker dies mid-action: its queue message stays hidden until its 30 s lease runs out.
            await server.KillAsync();
            await server.DisposeAsync();
            var killedAt = Stopwatch.StartNew();
            server = await start();
            await Eventually.ReturnsAsync(() => ExecutionStatusAsync(http, server.Url, trace), s => s == "succeeded", TimeSpan.FromSeconds(100), "the execution taken over and finished");
            output.WriteLine($"taken over and finished {killedAt.Elapsed.TotalSeconds:F1} s after the kill (its action's timeout is 600 s)");

            var executions = (JsonNode.Parse(await http.GetStringAsync($"{server.Url}/api/v1/traces/{trace}"))!["executions"] as JsonArray)!;
            var execution = Assert.Single(executions)!;
            var log = execution["log"]!.AsArray().Select(l => l!["status"]!.GetValue<string>()).ToList();
            Assert.Equal(2, log.Count(s => s == "running")); // once on the killed worker, once on its successor
            Assert.Equal("rested", execution["result"]!["stdout"]!.GetValue<string>().Trim());
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task PoisonAmongGood_StorageQueues_EveryPoisonMessageIsDeadLetteredWithItsReason_AndEveryGoodOneActedOnOnce()
    {
        var start = Server("storage-queue", out var storage);
        var bus = new StorageQueueMessageBus(Options.Create(storage), Options.Create(new BusOptions()), Options.Create(new StorageQueueOptions()), NullLogger<StorageQueueMessageBus>.Instance);
        var triggerQueue = new QueueClient(storage.ConnectionString, bus.QueueName(StormQueues.TriggerInstances));
        await triggerQueue.CreateIfNotExistsAsync();
        var missing = new List<string>();
        for (var i = 0; i < 50; i++)
        {
            await triggerQueue.SendMessageAsync($"garbage {i}: not what any bus wrote");
            var id = StormIds.New(DateTimeOffset.UtcNow);
            missing.Add(id);
            await bus.PublishAsync(StormQueues.Executions, StormEvents.Encode(new ExecutionRequest(id, "core.noop", [], id), DateTimeOffset.UtcNow), CancellationToken.None);
        }

        var good = await KillLoop.RunAsync(start, deliveries: 1000, kills: 0, concurrency: 16, deadline: TimeSpan.FromSeconds(120), progress: output.WriteLine);
        output.WriteLine(good.ToString());
        Assert.Equal(1000, good.ActedOnce);
        Assert.Equal(0, good.Lost + good.Duplicated);

        await using var server = await start();
        var letters = await Eventually.ReturnsAsync(async () => await DeadLettersAsync(server), l => l.Count >= 100, TimeSpan.FromSeconds(60), "100 dead letters");
        Assert.Equal(100, letters.Count);
        var unreadable = letters.Where(l => l["queue"]!.GetValue<string>() == StormQueues.TriggerInstances).ToList();
        Assert.Equal(50, unreadable.Count);
        Assert.All(unreadable, l => Assert.StartsWith("unreadable on delivery 1: the queue message is not this bus's envelope", l["reason"]!.GetValue<string>(), StringComparison.Ordinal));
        var failing = letters.Where(l => l["queue"]!.GetValue<string>() == StormQueues.Executions).ToList();
        Assert.Equal(missing.Order(), failing.Select(l => l["id"]!.GetValue<string>()).Order());
        Assert.All(failing, l =>
        {
            Assert.Equal(5, l["deliveries"]!.GetValue<int>());
            Assert.Contains("is not in the audit yet", l["reason"]!.GetValue<string>(), StringComparison.Ordinal);
        });
    }

    [Theory]
    [InlineData("in-process")]
    [InlineData("storage-queue")]
    public async Task DeadLetteredTriggerInstance_ReplayedFromTheCli_IsActedOnOnce_AndReplayingFinishedWorkDoesNothing(string transport)
    {
        var start = Server(transport, out var storage);
        var id = $"outage-{Guid.NewGuid():N}";
        var instance = new TriggerInstance(id, CoreTriggers.Webhook, new JsonObject { ["url"] = "ping" },
            new JsonObject { ["headers"] = new JsonObject(), ["body"] = new JsonObject { ["n"] = 1 } }, DateTimeOffset.UtcNow, id, "stanley");
        const string reason = "failed 5 deliveries; last error TimeoutException: the audit's storage did not answer";
        async Task DeadLetterAsync() => await WriteDeadLetterAsync(transport, storage, StormEvents.Encode(instance), reason);

        await DeadLetterAsync();
        await using var server = await start();
        var letter = Assert.Single(await DeadLettersAsync(server));
        Assert.Equal(id, letter["id"]!.GetValue<string>());
        Assert.Equal(reason, letter["reason"]!.GetValue<string>());

        var replayed = await StormProcess.RunAsync("dead-letter", "replay", id, "--api", server.Url);
        Assert.True(replayed.ExitCode == 0 && replayed.StdOut.Contains("Replayed 1 message(s).", StringComparison.Ordinal), replayed.ToString());
        using var http = StormProcess.NewHttpClient();
        await Eventually.ReturnsAsync(() => ExecutionStatusAsync(http, server.Url, id), s => s == "succeeded", TimeSpan.FromSeconds(60), "the replayed delivery acted on");
        Assert.Empty(await DeadLettersAsync(server));

        var again = await StormProcess.RunAsync("dead-letter", "replay", id, "--api", server.Url);
        Assert.True(again.ExitCode != 0 && again.StdErr.Contains($"no dead-lettered message has id '{id}'", StringComparison.Ordinal), again.ToString());

        // The same message dead-lettered once more (a duplicate) and replayed: its work is done, so nothing new runs.
        // (The rules engine enforces the rule again, which re-stamps the enforcement: that is how the test sees it handled.)
        var firstEnforcement = await EnforcedAtAsync(http, server.Url, id);
        await WriteDeadLetterAsync(transport, storage, StormEvents.Encode(instance), reason, server);
        var all = await StormProcess.RunAsync("dead-letter", "replay", "--all", "--api", server.Url);
        Assert.True(all.ExitCode == 0 && all.StdOut.Contains("Replayed 1 message(s).", StringComparison.Ordinal), all.ToString());
        await Eventually.ReturnsAsync(() => EnforcedAtAsync(http, server.Url, id), at => at != firstEnforcement, TimeSpan.FromSeconds(30), "the duplicate handled");
        var trace = JsonNode.Parse(await http.GetStringAsync($"{server.Url}/api/v1/traces/{id}"))!;
        Assert.Equal("succeeded", Assert.Single(trace["executions"]!.AsArray())!["status"]!.GetValue<string>());
        Assert.Empty(await DeadLettersAsync(server));
    }

    [Fact]
    public async Task StorageHangs_WebhooksWithDeliveryIdsAreStillAccepted_AndActedOnOnceItIsBack()
    {
        var start = Server("in-process", out _);
        await using var server = await start();
        using var http = StormProcess.NewHttpClient();
        http.Timeout = TimeSpan.FromSeconds(5);
        var run = Guid.NewGuid().ToString("N")[..8];

        // Warm: the key is verified and everything is open before storage hangs.
        Assert.Equal(HttpStatusCode.Accepted, (await PostPingAsync(http, server.Url, $"hang-{run}-warm")).StatusCode);

        var accepted = new System.Collections.Concurrent.ConcurrentBag<string>();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var hang = Stopwatch.StartNew();
        await using (await azurite.SuspendAsync())
        {
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            {
                // Twelve seconds of senders at concurrency 8 (past the credential cache's 10 s lifetime), each sending
                // 25 a second: a busy sender's pace, and few enough to check each one's trace afterwards.
                while (hang.Elapsed < TimeSpan.FromSeconds(12))
                {
                    await Task.Delay(40);
                    var id = $"hang-{run}-{Interlocked.Increment(ref next):D5}";
                    try
                    {
                        using var answer = await PostPingAsync(http, server.Url, id);
                        (answer.StatusCode == HttpStatusCode.Accepted ? accepted : failures).Add(id);
                    }
                    catch (TaskCanceledException)
                    {
                        failures.Add(id + " (no answer in 5 s)");
                    }
                }
            })));
        }

        output.WriteLine($"{accepted.Count} accepted in {hang.Elapsed.TotalSeconds:F1} s while storage hung; {failures.Count} not");
        Assert.Empty(failures);
        Assert.True(accepted.Count >= 1000, $"only {accepted.Count} accepted while storage hung");

        var clock = Stopwatch.StartNew();
        var settled = await KillLoop.WaitForAllActedOnAsync(server, http, [.. accepted], TimeSpan.FromSeconds(120), clock, output.WriteLine);
        Assert.True(settled.Lost == 0 && settled.Duplicated == 0, settled.ToString());
    }

    // A server factory on one port and one storage prefix, so each restart is the same server coming back.
    private Func<Task<StormProcess>> Server(string transport, out Azure.AzureStorageOptions storage, bool packs = false)
    {
        var options = azurite.NewStorageOptions();
        storage = options;
        var port = AzuriteFixture.FreePort().ToString(CultureInfo.InvariantCulture);
        var environment = new Dictionary<string, string> { ["Storage__Prefix"] = options.Prefix };
        string[] arguments = ["--port", port, "--storage", azurite.ConnectionString, "--audit-journal", _journal, "--transport", transport,
            .. packs ? new[] { "--packs", _packs.Root } : []];
        return () => StormProcess.ServeAsync(environment, arguments);
    }

    private async Task WriteDeadLetterAsync(string transport, Azure.AzureStorageOptions storage, BusMessage message, string reason, StormProcess? running = null)
    {
        if (transport == "storage-queue")
        {
            var bus = new StorageQueueMessageBus(Options.Create(storage), Options.Create(new BusOptions()), Options.Create(new StorageQueueOptions()), NullLogger<StorageQueueMessageBus>.Instance);
            var poison = new QueueClient(storage.ConnectionString, bus.QueueName(StormQueues.TriggerInstances) + "-poison");
            await poison.CreateIfNotExistsAsync();
            var envelope = new JsonObject
            {
                ["id"] = message.Id,
                ["body"] = JsonNode.Parse(message.Body.Span),
                ["dead_letter_reason"] = reason,
                ["dead_letter_deliveries"] = 5,
                ["dead_lettered_at"] = DateTimeOffset.UtcNow,
            };
            await poison.SendMessageAsync(envelope.ToJsonString());
            return;
        }

        // The in-process bus's dead letters are rows in its file (a running server reads them when listing and replaying).
        var file = Path.Combine(_journal, StormServer.JournalFolderName(storage.ConnectionString, storage.TablePrefix), SqliteMessageBus.FileName);
        if (running is null)
        {
            await (SqliteMessageBus.Open(Path.GetDirectoryName(file)!)).DisposeAsync(); // creates the file as the server would
        }

        await using var connection = new SqliteConnection($"Data Source={file};Pooling=False");
        await connection.OpenAsync();
        await using var insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO dead_letters (queue, id, body, deliveries, reason, at) VALUES ($queue, $id, $body, 5, $reason, $at)";
        insert.Parameters.AddWithValue("$queue", StormQueues.TriggerInstances);
        insert.Parameters.AddWithValue("$id", message.Id);
        insert.Parameters.AddWithValue("$body", message.Body.ToArray());
        insert.Parameters.AddWithValue("$reason", reason);
        insert.Parameters.AddWithValue("$at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        await insert.ExecuteNonQueryAsync();
    }

    private static async Task<List<JsonObject>> DeadLettersAsync(StormProcess server)
    {
        var listed = await StormProcess.RunAsync("dead-letter", "list", "--json", "--limit", "1000", "--api", server.Url);
        Assert.True(listed.ExitCode == 0, listed.ToString());
        return [.. JsonNode.Parse(listed.StdOut)!.AsArray().Select(l => l!.AsObject())];
    }

    private static async Task<string?> ExecutionStatusAsync(HttpClient http, string url, string traceTag)
    {
        using var answer = await http.GetAsync($"{url}/api/v1/traces/{traceTag}");
        return answer.IsSuccessStatusCode && JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["executions"] is JsonArray { Count: > 0 } executions
            ? executions[0]!["status"]!.GetValue<string>()
            : null;
    }

    private static async Task<string?> EnforcedAtAsync(HttpClient http, string url, string traceTag)
    {
        using var answer = await http.GetAsync($"{url}/api/v1/traces/{traceTag}");
        return answer.IsSuccessStatusCode && JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["rule_enforcements"] is JsonArray { Count: > 0 } enforcements
            ? enforcements[0]!["enforced_at"]!.GetValue<string>()
            : null;
    }

    private static Task<HttpResponseMessage> PostPingAsync(HttpClient http, string url, string deliveryId)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"{url}/api/v1/webhooks/ping") { Content = Json("""{"hung": true}""") };
        request.Headers.Add("X-Delivery-Id", deliveryId);
        return http.SendAsync(request);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
