using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// Retention: how long purging one day of N executions (default 100,000) takes on Azurite. The day is what webhooks
/// and their rules leave — per execution a trigger instance, a rule enforcement and the execution — plus output for
/// every tenth execution and a large (blob) result for every hundredth; the next day holds a tenth as much, which must
/// stay whole. Two cases: a day whose executions have all finished (its tables are deleted whole), and, smaller
/// (default 10,000), a day where every thousandth execution is still running, which must stay (the rest of the day is
/// deleted row by row).
/// </summary>
internal static class PurgeBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var executions = Args.Int(args, "--executions", 100_000);
        var withUnfinished = Args.Int(args, "--executions-with-unfinished", 10_000);
        // Azurite finds a row by scanning its partition, so seeding a big day into few shards is slow (not the purge).
        var shards = Args.Int(args, "--shards", new AzureStorageOptions().AuditShards);
        var data = Path.Combine(Path.GetTempPath(), "storm-bench-purge-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(data);
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data, inMemory: true);
        Console.WriteLine($"Azurite (in-memory persistence) on ports {string.Join(", ", azurite.Endpoints.Ports)}; machine: {Environment.ProcessorCount} cores; " +
            $"{shards} audit shards");
        Console.WriteLine();
        Console.WriteLine("| executions in the day | unfinished | seeding | purge time | executions deleted | trigger instances | rule enforcements | payload blobs | output rows | kept | records deleted/s |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        var finished = await RunCaseAsync(azurite.Endpoints.ConnectionString, shards, "all", executions, unfinishedEvery: 0);
        await RunCaseAsync(azurite.Endpoints.ConnectionString, shards, "some", withUnfinished, unfinishedEvery: 1000);
        Console.WriteLine();
        Console.WriteLine("checked after each case: every unfinished execution and the next day's executions are still there, every finished one of the day is gone");
        return finished < TimeSpan.FromMinutes(1) ? 0 : 1;
    }

    private static async Task<TimeSpan> RunCaseAsync(string connectionString, int shards, string name, int executions, int unfinishedEvery)
    {
        var options = Options.Create(new AzureStorageOptions { ConnectionString = connectionString, Prefix = $"purge{name}", AuditShards = shards });
        var audit = new TableAuditStore(options, TimeProvider.System);
        var output = new TableExecutionOutputStore(options);
        await audit.InitializeAsync();
        var day = new DateTimeOffset(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);

        var seeding = Stopwatch.StartNew();
        var unfinished = await SeedDayAsync(audit, output, day, executions, unfinishedEvery);
        await SeedDayAsync(audit, output, day.AddDays(1), executions / 10, unfinishedEvery: 0);
        seeding.Stop();

        var retention = new AuditRetention(audit, output, Options.Create(new StormOptions()), TimeProvider.System, NullLogger<AuditRetention>.Instance);
        var purging = Stopwatch.StartNew();
        var summary = await retention.PurgeAsync(DateOnly.FromDateTime(day.AddDays(1).UtcDateTime), budget: null, progress: null, CancellationToken.None);
        purging.Stop();

        var purged = Check(summary.Days.Count == 1, "one day purged", summary.Days[0]);
        // A day deleted whole is not counted by the store; what it held is what was seeded into it.
        var seeded = (Executions: executions - unfinished, TriggerInstances: executions - unfinished, Output: executions / 10);
        static string Count(int? counted, int seeded) => counted is { } n ? $"{n:N0}" : $"{seeded:N0} (whole)";
        var records = (purged.Executions ?? seeded.Executions) * 3 + (purged.OutputRows ?? seeded.Output * 2);
        Console.WriteLine($"| {executions:N0} | {unfinished:N0} | {seeding.Elapsed.TotalSeconds:N0} s | **{purging.Elapsed.TotalSeconds:N1} s** | {Count(purged.Executions, seeded.Executions)} | " +
            $"{Count(purged.TriggerInstances, seeded.TriggerInstances)} | {Count(purged.RuleEnforcements, seeded.TriggerInstances)} | {purged.Payloads:N0} | " +
            $"{Count(purged.OutputRows, seeded.Output * 2)} | {purged.KeptExecutions.Count:N0} | {records / purging.Elapsed.TotalSeconds:N0} |");

        // What must stay did: the unfinished executions and the whole next day; nothing finished of the day is left.
        var next = await audit.QueryExecutionsAsync(new AuditQuery(From: day.AddDays(1), To: day.AddDays(2).AddSeconds(-1), Limit: 1000), CancellationToken.None);
        Check(next.Count == Math.Min(1000, executions / 10), $"the next day's executions are all there ({next.Count})", next);
        Check(purged.KeptExecutions.Count == unfinished, $"every unfinished execution was kept ({purged.KeptExecutions.Count} of {unfinished})", purged);
        Check(purged.Executions is null || purged.Executions == executions - unfinished, "every finished execution was deleted", purged);
        var left = await audit.QueryExecutionsAsync(new AuditQuery(From: day, To: day.AddDays(1).AddSeconds(-1), Limit: 1000), CancellationToken.None);
        Check(left.Count == unfinished && left.All(e => e.Status == ExecutionStatus.Running), $"only the unfinished executions are left of the day ({left.Count})", left);
        return purging.Elapsed;
    }

    // A day as webhooks leave it; returns how many executions were left unfinished.
    private static async Task<int> SeedDayAsync(TableAuditStore audit, IExecutionOutputStore output, DateTimeOffset day, int count, int unfinishedEvery)
    {
        var unfinished = 0;
        var spread = TimeSpan.FromDays(1).Ticks / count;
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 256 }, async (i, ct) =>
        {
            var at = day.AddTicks(spread * i);
            var instance = StormIds.New(at);
            var tag = instance;
            await audit.RecordTriggerInstanceAsync(new TriggerInstanceRecord
            {
                Id = instance, TriggerType = CoreTriggers.Webhook, TriggerParameters = new JsonObject { ["url"] = "github" },
                Payload = new JsonObject { ["body"] = new JsonObject { ["ref"] = "refs/heads/main", ["n"] = i } },
                OccurredAt = at, TraceTag = tag, Status = TriggerInstanceStatus.Processed,
            }, ct);
            var execution = StormIds.ForRuleEnforcement(instance, "examples.on_push", at);
            var running = unfinishedEvery > 0 && i % unfinishedEvery == unfinishedEvery - 1;
            if (running)
            {
                Interlocked.Increment(ref unfinished);
            }

            var status = running ? ExecutionStatus.Running : ExecutionStatus.Succeeded;
            await audit.TryCreateExecutionAsync(new ExecutionRecord
            {
                Id = execution, ActionRef = "examples.deploy", RunnerType = "local-shell-cmd", TraceTag = tag, TriggerInstanceId = instance,
                RuleRef = "examples.on_push", Parameters = new JsonObject { ["branch"] = "main" },
                Status = status, StartTimestamp = at, EndTimestamp = running ? null : at.AddSeconds(2),
                Result = new JsonObject { ["stdout"] = i % 100 == 0 ? new string('x', 70_000) : "deployed", ["exit_code"] = 0 },
                History = [new StatusChange(status, at)],
            }, ct);
            await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance, "examples.on_push", execution, RuleEnforcementRecord.Succeeded, null, at, tag, "stanley", at), ct);
            if (i % 10 == 0)
            {
                await output.AppendAsync(execution, [new OutputChunk(0, "stdout", $"deploying {i}\n"), new OutputChunk(1, "stdout", "deployed\n")], ct);
            }
        });
        return unfinished;
    }

    private static T Check<T>(bool condition, string what, T value) =>
        condition ? value : throw new InvalidOperationException($"check failed: {what}: {value}");
}
