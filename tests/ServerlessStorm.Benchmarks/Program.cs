using ServerlessStorm.Benchmarks;

// storm benchmarks: "latency" (webhook to finished execution through the local stack), "executions" (executions/s
// with the audit written entity by entity, batched, or in memory), "rules" (matching and template rendering) or
// "workflows" (the workflow interpreter against hand-written orchestrators, with-items scaling, steps per second).
return args.FirstOrDefault() switch
{
    "rules" => RulesBenchmark.Run(args),
    "executions" => await ExecutionsBenchmark.RunAsync(args),
    "workflows" => await WorkflowsBenchmark.RunAsync(args),
    "latency" or null => await LatencyBenchmark.RunAsync(args),
    var other => Usage(other),
};

static int Usage(string mode)
{
    Console.Error.WriteLine($"unknown benchmark '{mode}'; use 'latency', 'executions', 'workflows' or 'rules'");
    return 2;
}
