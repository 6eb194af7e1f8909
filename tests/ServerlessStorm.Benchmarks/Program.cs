using ServerlessStorm.Benchmarks;

// storm benchmarks: "latency" (webhook to finished execution through the local stack) or "rules" (matching and
// template rendering in the engine).
return args.FirstOrDefault() switch
{
    "rules" => RulesBenchmark.Run(args),
    "latency" or null => await LatencyBenchmark.RunAsync(args),
    var other => Usage(other),
};

static int Usage(string mode)
{
    Console.Error.WriteLine($"unknown benchmark '{mode}'; use 'latency' or 'rules'");
    return 2;
}
