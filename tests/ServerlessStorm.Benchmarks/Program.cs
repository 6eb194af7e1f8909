using ServerlessStorm.Benchmarks;

// storm benchmarks: "latency" (webhook to finished execution through the local stack), "executions" (executions/s
// with the audit written entity by entity, batched, or in memory) or "rules" (matching and template rendering).
return args.FirstOrDefault() switch
{
    "rules" => RulesBenchmark.Run(args),
    "executions" => await ExecutionsBenchmark.RunAsync(args),
    "latency" or null => await LatencyBenchmark.RunAsync(args),
    var other => Usage(other),
};

static int Usage(string mode)
{
    Console.Error.WriteLine($"unknown benchmark '{mode}'; use 'latency', 'executions' or 'rules'");
    return 2;
}
