using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;

namespace ServerlessStorm.Benchmarks;

/// <summary>
/// Rule matching throughput on one core: events/s against 10, 1,000 and 10,000 rules on one trigger type, compiled
/// matcher and naive evaluator in the same run, on ~1 KB payloads. Rules are loaded from generated pack files
/// through the real loader. Also the cost of rendering a typical action-parameter template.
/// </summary>
internal static class RulesBenchmark
{
    private static readonly string[] Severities = ["critical", "warning", "info", "debug"];
    private static readonly string[] Environments = ["prod", "staging", "dev"];
    private static readonly string[] Regions = ["eu-west", "us-east", "ap-south"];

    public static int Run(string[] args)
    {
        var seconds = Args.Int(args, "--seconds", 2);
        Console.WriteLine($"one thread; {Environment.ProcessorCount} cores on the machine; 1 s warm-up, then the median of 3 rounds over ~{seconds} s; payload ~{Payloads(1, new Random(1))[0].ToJsonString().Length} bytes");
        Console.WriteLine();
        Console.WriteLine("| rule set | rules | compiled events/s | naive events/s | compiled / naive | matches per event |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var results = new Dictionary<(string, int), double>();
        foreach (var (set, generator) in new (string, Func<int, string>)[] { ("realistic mix", MixedRule), ("equality/prefix only", EqualityRule) })
        {
            foreach (var count in new[] { 10, 1_000, 10_000 })
            {
                var catalog = LoadRules(count, generator);
                var matcher = new RuleMatcher(NullLogger<RuleMatcher>.Instance);
                var compiled = new CompiledRuleEvaluator(catalog, matcher);
                var naive = new NaiveRuleEvaluator(catalog, matcher);
                var payloads = Payloads(512, new Random(count));
                var (compiledRate, matches) = Measure(compiled, payloads, TimeSpan.FromSeconds(seconds));
                var (naiveRate, naiveMatches) = Measure(naive, payloads, TimeSpan.FromSeconds(Math.Min(seconds, 2)));
                if (Math.Abs(matches - naiveMatches) > 1e-9)
                {
                    throw new InvalidOperationException($"compiled and naive disagree: {matches} vs {naiveMatches} matches per event");
                }

                results[(set, count)] = compiledRate;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {set} | {count:N0} | {compiledRate:N0} | {naiveRate:N0} | {compiledRate / naiveRate:N1}x | {matches:0.00} |"));
            }
        }

        Console.WriteLine();
        foreach (var set in new[] { "realistic mix", "equality/prefix only" })
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{set}: compiled throughput at 10,000 rules is {results[(set, 10_000)] / results[(set, 10)]:0.00}x its throughput at 10 rules"));
        }

        Console.WriteLine();
        RenderTemplates(TimeSpan.FromSeconds(seconds));
        return 0;
    }

    // The same proportions at every size (60% equality, 20% prefix, 10% regex, 10% case-insensitive), so even the
    // 10-rule set holds every kind.
    private static string MixedRule(int i) => (i % 10) switch
    {
        < 6 => $"""
            criteria:
              trigger.body.service:
                type: equals
                pattern: svc-{i % 5000}
              trigger.body.severity:
                type: equals
                pattern: {Severities[i % Severities.Length]}
              trigger.body.host:
                type: exists
            """,
        < 8 => $"""
            criteria:
              trigger.body.host:
                type: startswith
                pattern: web-{i % 3000}.
              trigger.body.env:
                type: inside
                pattern: [{Environments[i % 3]}, {Environments[(i + 1) % 3]}]
            """,
        < 9 => $"""
            criteria:
              trigger.body.service:
                type: equals
                pattern: svc-{i % 5000}
              trigger.body.message:
                type: regex
                pattern: "(timeout|refused) after \\d+ ?ms"
            """,
        _ => $"""
            criteria:
              trigger.body.region:
                type: iequals
                pattern: {Regions[i % 3].ToUpperInvariant()}
              trigger.body.service:
                type: istartswith
                pattern: SVC-{i % 5000}
            """,
    };

    private static string EqualityRule(int i) => i % 2 == 0
        ? $"criteria:\n  trigger.body.service:\n    type: equals\n    pattern: svc-{i % 5000}\n  trigger.body.env:\n    type: equals\n    pattern: {Environments[i % 3]}\n"
        : $"criteria:\n  trigger.body.host:\n    type: startswith\n    pattern: web-{i % 3000}.\n";

    private static PackCatalog LoadRules(int count, Func<int, string> criteria)
    {
        var root = Path.Combine(Path.GetTempPath(), "storm-bench-rules-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "bench", "rules"));
            File.WriteAllText(Path.Combine(root, "bench", "pack.yaml"), "name: bench\nversion: 1.0.0\n");
            foreach (var file in Directory.EnumerateFiles(Path.Combine(Testing.RepositoryPaths.Packs, "core"), "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(root, "core", Path.GetRelativePath(Path.Combine(Testing.RepositoryPaths.Packs, "core"), file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }

            for (var i = 0; i < count; i++)
            {
                File.WriteAllText(Path.Combine(root, "bench", "rules", $"r{i:D5}.yaml"),
                    $"name: r{i}\npack: bench\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: events\n{criteria(i)}\naction:\n  ref: core.noop\n");
            }

            var result = new PackLoader(ServerlessStorm.Engine.Actions.RunnerRegistry.Default).LoadFrom(root);
            return result.IsValid ? result.Catalog : throw new InvalidOperationException(string.Join("\n", result.Problems.Take(5)));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static List<JsonNode> Payloads(int count, Random random) => [.. Enumerable.Range(0, count).Select(_ => (JsonNode)new JsonObject
    {
        ["headers"] = new JsonObject { ["Content-Type"] = "application/json", ["User-Agent"] = "alertmanager/0.27", ["X-Request-Id"] = Guid.NewGuid().ToString() },
        ["body"] = new JsonObject
        {
            ["service"] = $"svc-{random.Next(6000)}",
            ["severity"] = Severities[random.Next(Severities.Length)],
            ["host"] = $"web-{random.Next(4000)}.example.internal",
            ["env"] = Environments[random.Next(3)],
            ["region"] = Regions[random.Next(3)],
            ["message"] = random.Next(4) == 0 ? $"upstream timeout after {random.Next(100, 5000)} ms" : "health check ok",
            ["labels"] = new JsonObject { ["team"] = "payments", ["tier"] = "frontend", ["owner"] = "oncall-primary", ["runbook"] = "https://runbooks.example.internal/payments/latency" },
            ["annotations"] = new JsonObject { ["summary"] = "p99 latency above the objective for 5 minutes", ["dashboard"] = "https://grafana.example.internal/d/payments-overview" },
            ["metrics"] = new JsonArray(random.Next(1000), random.Next(1000), random.Next(1000), 0.25, 0.5, 0.99),
            ["startsAt"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["generatorURL"] = "https://prometheus.example.internal/graph?g0.expr=histogram_quantile%280.99%2C+sum+by+%28le%29+%28rate%28http_request_duration_seconds_bucket%5B5m%5D%29%29%29",
            ["fingerprint"] = Guid.NewGuid().ToString("N"),
            ["receiver"] = "serverlessstorm-webhook",
        },
    })];

    private static (double EventsPerSecond, double MatchesPerEvent) Measure(IRuleEvaluator evaluator, List<JsonNode> payloads, TimeSpan budget)
    {
        // Warm up until the JIT has settled (tiered compilation promotes hot code after a while), then take the
        // median of three timed rounds.
        RunPasses(evaluator, payloads, TimeSpan.FromSeconds(1));
        var rounds = Enumerable.Range(0, 3).Select(_ => RunPasses(evaluator, payloads, budget / 3)).OrderBy(r => r.EventsPerSecond).ToList();
        return rounds[1];
    }

    // Whole passes over the payloads, so compiled and naive see the same events.
    private static (double EventsPerSecond, double MatchesPerEvent) RunPasses(IRuleEvaluator evaluator, List<JsonNode> payloads, TimeSpan budget)
    {
        var parameters = new JsonObject { ["url"] = "events" };
        var events = 0L;
        var matches = 0L;
        var clock = Stopwatch.StartNew();
        do
        {
            foreach (var payload in payloads)
            {
                matches += evaluator.Evaluate("core.st2.webhook", parameters, payload).Count;
            }

            events += payloads.Count;
        }
        while (clock.Elapsed < budget);

        return (events / clock.Elapsed.TotalSeconds, (double)matches / events);
    }

    private static void RenderTemplates(TimeSpan budget)
    {
        var payload = Payloads(1, new Random(7))[0];
        var templates = new (string Name, string Source)[]
        {
            ("one value", "{{ trigger.body.service }}"),
            ("typical message", "[{{ trigger.body.severity | upper }}] {{ trigger.body.service }} on {{ trigger.body.host }}: {{ trigger.body.annotations.summary }} ({{ trigger.body.labels.runbook }})"),
            ("JSON body", "{{ trigger.body | to_json_string }}"),
            ("loop and condition", "{% for k, v in trigger.body.labels.items() %}{{ k }}={{ v }}{% if not loop.last %},{% endif %}{% endfor %}"),
        };
        Console.WriteLine("| template | µs per render | bytes allocated per render |");
        Console.WriteLine("|---|---|---|");
        foreach (var (name, source) in templates)
        {
            var template = Template.Parse(source);
            for (var i = 0; i < 1000; i++)
            {
                template.Render(TemplateScope.ForTrigger(payload));
            }

            var renders = 0L;
            var before = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < budget)
            {
                template.Render(TemplateScope.ForTrigger(payload));
                renders++;
            }

            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {clock.Elapsed.TotalMilliseconds * 1000 / renders:0.00} | {allocated / renders:N0} |"));
        }
    }
}
