using System.Diagnostics;
using System.Globalization;
using DurableTask.AzureStorage;
using DurableTask.Core;
using Microsoft.DurableTask;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Durable;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// Workflows on the local Durable Task engine over Azurite, every task a real core.noop execution audited in Table
/// Storage: (1) the interpreter's overhead — a 20-task sequence and a 200-item with-items interpreted from YAML,
/// against hand-written orchestrators making the same activity calls on the same task hub, alternating, in one run;
/// (2) with-items scaling at 10, 100 and 1,000 items with concurrency 50; (3) steps (task activities) per second.
/// Times are the task hub's own (an orchestration's created → completed), so no client polling is counted.
/// </summary>
internal static class WorkflowsBenchmark
{
    private const string HandSequential = "BenchHandWrittenSequence";
    private const string HandFanOut = "BenchHandWrittenFanOut";

    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = Args.Int(args, "--rounds", 10);
        var sequenceLength = Args.Int(args, "--tasks", 20);
        var fanOut = Args.Int(args, "--items", 200);
        var scaling = Args.Text(args, "--scaling", "10,100,1000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var concurrency = Args.Int(args, "--concurrency", 50);
        var extendedSessions = !args.Contains("--no-extended-sessions");

        var data = Path.Combine(Path.GetTempPath(), "storm-bench-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = await AzuriteLauncher.EnsureRunningAsync(new AzuriteEndpoints(AzuriteFixture.FreePort(), AzuriteFixture.FreePort(), AzuriteFixture.FreePort()), data);
        var storage = new AzureStorageOptions { ConnectionString = azurite.Endpoints.ConnectionString, Prefix = "wfbench" };
        var packs = Directory.CreateTempSubdirectory("storm-bench-packs-").FullName;
        CopyDirectory(Path.Combine(RepositoryPaths.Packs, "core"), Path.Combine(packs, "core"));

        // The engine (catalog, runners, executor, Table audit) whose activities both kinds of orchestrator call.
        await using var host = await StormTestHost.StartAsync(new TableAuditStore(Options.Create(storage), TimeProvider.System), new InMemoryMessageBus(), packs,
            services => services.AddSingleton(Options.Create(storage)).AddStormWorkflowRunner());
        var activities = host.Services.GetRequiredService<WorkflowActivities>();
        var service = new AzureStorageOrchestrationService(WorkflowTaskHub.Settings(storage, "wfbenchhub", new WorkflowOptions { ExtendedSessions = extendedSessions }));
        await service.CreateIfNotExistsAsync();
        var worker = new TaskHubWorker(service);
        WorkflowTaskHub.AddWorkflows(worker, () => activities);
        worker.AddTaskOrchestrations(
            WorkflowTaskHub.Orchestration(HandSequential, () => new HandWrittenSequence()),
            WorkflowTaskHub.Orchestration(HandFanOut, () => new HandWrittenFanOut()));
        await worker.StartAsync();
        var client = new TaskHubClient(service);
        Console.WriteLine($"Azurite on ports {string.Join(", ", azurite.Endpoints.Ports)}; machine: {Environment.ProcessorCount} cores; every task is a core.noop execution audited in Table Storage; " +
            $"extended sessions {(extendedSessions ? "on" : "off")}");

        var sequenceYaml = "version: 1.0\ntasks:\n" + string.Concat(Enumerable.Range(1, sequenceLength).Select(i =>
            $"  t{i}:\n    action: core.noop\n" + (i < sequenceLength ? $"    next: [{{do: t{i + 1}}}]\n" : "")));
        string ItemsYaml(int? limit) =>
            "version: 1.0\ninput: [items]\ntasks:\n  each:\n    with:\n      items: i in <% ctx(items) %>\n" + (limit is { } c ? $"      concurrency: {c}\n" : "") + "    action: core.noop\n";
        string ItemsInput(int n) => "{\"items\": [" + string.Join(",", Enumerable.Range(0, n)) + "]}";

        async Task<double> TimeAsync(string orchestration, string yaml, string input)
        {
            var id = StormIds.New(DateTimeOffset.UtcNow);
            var instance = await client.CreateOrchestrationInstanceAsync(orchestration, "", id, new WorkflowStart(id, id, "bench.yaml", yaml, input));
            var state = await client.WaitForOrchestrationAsync(instance, TimeSpan.FromMinutes(30));
            if (state?.OrchestrationStatus != OrchestrationStatus.Completed || !state.Output.Contains("\"succeeded\"", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"{orchestration} {id} did not succeed: {state?.OrchestrationStatus} {state?.Output}");
            }

            return (state.CompletedTime - state.CreatedTime).TotalMilliseconds;
        }

        InterpreterAlone("sequence", sequenceYaml, "{}");
        InterpreterAlone("with-items", ItemsYaml(null), ItemsInput(fanOut));

        // Warm-up: first activity calls, JIT, table creation.
        await TimeAsync(WorkflowOrchestrator.Name, sequenceYaml, "{}");
        await TimeAsync(HandFanOut, ItemsYaml(null), ItemsInput(20));

        Console.WriteLine();
        Console.WriteLine($"| workload | interpreted median ms | hand-written median ms | overhead | steps/s interpreted | steps/s hand-written |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var (label, steps, yaml, input, hand) in new[]
        {
            ($"{sequenceLength}-task sequence", sequenceLength, sequenceYaml, "{}", HandSequential),
            ($"with-items, {fanOut} items (no limit)", fanOut, ItemsYaml(null), ItemsInput(fanOut), HandFanOut),
        })
        {
            var interpreted = new List<double>();
            var handWritten = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                // Alternating in ABBA order, so drift in Azurite (its tables grow) and what one run leaves behind
                // for the next (its last writes, its session) weigh on both alike.
                if (round % 2 == 0)
                {
                    interpreted.Add(await TimeAsync(WorkflowOrchestrator.Name, yaml, input));
                    handWritten.Add(await TimeAsync(hand, yaml, input));
                }
                else
                {
                    handWritten.Add(await TimeAsync(hand, yaml, input));
                    interpreted.Add(await TimeAsync(WorkflowOrchestrator.Name, yaml, input));
                }
                Console.Error.Write($"\r{label}: round {round + 1}/{rounds}");
            }

            Console.Error.WriteLine();
            var a = Median(interpreted);
            var b = Median(handWritten);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {label} | {a:0} | {b:0} | {(a / b - 1) * 100:+0.0;-0.0}% | {steps / (a / 1000):0.0} | {steps / (b / 1000):0.0} |"));
        }

        Console.WriteLine();
        Console.WriteLine($"| with-items at concurrency {concurrency} | total ms | ms per item | steps/s |");
        Console.WriteLine("|---|---|---|---|");
        var times = new Dictionary<int, double>();
        foreach (var n in scaling)
        {
            var ms = await TimeAsync(WorkflowOrchestrator.Name, ItemsYaml(concurrency), ItemsInput(n));
            times[n] = ms;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {n} items | {ms:0} | {ms / n:0.0} | {n / (ms / 1000):0.0} |"));
        }

        if (times.TryGetValue(100, out var t100) && times.TryGetValue(1000, out var t1000))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"\ntime(1000) / time(100) = {t1000 / t100:0.00} (linear would be 10)"));
        }

        await worker.StopAsync(isForced: true);
        Directory.Delete(packs, recursive: true);
        return 0;
    }

    // The interpreter's own CPU cost per workflow (loading the YAML, then every decision), with no engine around it.
    private static void InterpreterAlone(string label, string yaml, string input)
    {
        const int Runs = 200;
        var clock = Stopwatch.StartNew();
        var steps = 0;
        for (var run = 0; run < Runs + 20; run++)
        {
            if (run == 20)
            {
                clock.Restart();
                steps = 0;
            }

            var (workflow, _) = ServerlessStorm.Engine.Workflows.WorkflowLoader.LoadText(yaml, "bench.yaml");
            var interpreter = new ServerlessStorm.Engine.Workflows.WorkflowInterpreter(workflow!);
            var pending = new Queue<ServerlessStorm.Engine.Workflows.WorkflowCommand>(interpreter.Start((System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(input)!));
            while (pending.TryDequeue(out var command))
            {
                if (command is ServerlessStorm.Engine.Workflows.RunAction action)
                {
                    steps++;
                    foreach (var next in interpreter.OnActionCompleted(action.Id, "succeeded", new System.Text.Json.Nodes.JsonObject()))
                    {
                        pending.Enqueue(next);
                    }
                }
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"interpreter alone, {label}: {clock.Elapsed.TotalMilliseconds / Runs:0.00} ms per workflow ({steps / Runs} steps), no engine"));
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private static TaskActionRequest Noop(WorkflowStart start, string task) =>
        new(start.ExecutionId, start.TraceTag, task, task, "core.noop", "{}");

    /// <summary>What the interpreter does for the sequence, written by hand: one activity after another, then the end.</summary>
    private sealed class HandWrittenSequence : TaskOrchestrator<WorkflowStart, WorkflowEnd>
    {
        public override async Task<WorkflowEnd> RunAsync(TaskOrchestrationContext context, WorkflowStart start)
        {
            var tasks = start.WorkflowText.Split('\n').Count(l => l.StartsWith("  t", StringComparison.Ordinal));
            for (var i = 1; i <= tasks; i++)
            {
                var outcome = await context.CallActivityAsync<TaskActionOutcome>(RunTaskActionActivity.Name, Noop(start, $"t{i}"));
                if (outcome.Status != "succeeded")
                {
                    return new WorkflowEnd("failed", null, [outcome.Error ?? "failed"]);
                }
            }

            var end = new WorkflowEnd("succeeded", "{}", []);
            await context.CallActivityAsync(FinishWorkflowActivity.Name, new WorkflowFinish(start.ExecutionId, end));
            return end;
        }
    }

    /// <summary>What the interpreter does for with-items, written by hand: every item's activity at once, then the end.</summary>
    private sealed class HandWrittenFanOut : TaskOrchestrator<WorkflowStart, WorkflowEnd>
    {
        public override async Task<WorkflowEnd> RunAsync(TaskOrchestrationContext context, WorkflowStart start)
        {
            var items = System.Text.Json.Nodes.JsonNode.Parse(start.Input)!["items"]!.AsArray().Count;
            var outcomes = await Task.WhenAll(Enumerable.Range(0, items).Select(i =>
                context.CallActivityAsync<TaskActionOutcome>(RunTaskActionActivity.Name, Noop(start, $"each.{i}"))));
            var end = outcomes.All(o => o.Status == "succeeded") ? new WorkflowEnd("succeeded", "{}", []) : new WorkflowEnd("failed", null, ["an item failed"]);
            await context.CallActivityAsync(FinishWorkflowActivity.Name, new WorkflowFinish(start.ExecutionId, end));
            return end;
        }
    }
}
