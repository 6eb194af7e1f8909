using ServerlessStorm.Benchmarks;

// storm benchmarks: "latency" (webhook to finished execution through the local stack), "executions" (executions/s
// with the audit written entity by entity, batched, or in memory), "rules" (matching and template rendering) or
// "workflows" (the workflow interpreter against hand-written orchestrators, with-items scaling, steps per second) or
// "auth" (webhook accepted without authentication, with an API key and with a signed body) or "recovery" (crashes:
// SIGKILL to all accepted work done, the kill loop, webhooks accepted while storage hangs) or "timers" (a day of a
// pack of 10 timers: the function runs the timer sensor makes, against the 5-second poll, and their cost) or
// "tracing" (executions/s and webhook p50 with tracing off, on without an exporter, and exporting over OTLP) or
// "purge" (retention deleting a day of 100,000 executions from the audit in Azurite) or "yaql" (µs per typical
// workflow expression in YAQL beside the equivalent Jinja) or "python" (a python-script no-op beside core.noop and
// core.local: executions/s and p50).
return args.FirstOrDefault() switch
{
    "rules" => RulesBenchmark.Run(args),
    "executions" => await ExecutionsBenchmark.RunAsync(args),
    "workflows" => await WorkflowsBenchmark.RunAsync(args),
    "auth" => await AuthBenchmark.RunAsync(args),
    "recovery" => await RecoveryBenchmark.RunAsync(args),
    "timers" => await TimersBenchmark.RunAsync(args),
    "tracing" => await TracingBenchmark.RunAsync(args),
    "purge" => await PurgeBenchmark.RunAsync(args),
    "yaql" => YaqlBenchmark.Run(args),
    "python" => await PythonBenchmark.RunAsync(args),
    "latency" or null => await LatencyBenchmark.RunAsync(args),
    var other => Usage(other),
};

static int Usage(string mode)
{
    Console.Error.WriteLine($"unknown benchmark '{mode}'; use 'latency', 'executions', 'workflows', 'rules', 'auth', 'recovery', 'timers', 'tracing', 'purge', 'yaql' or 'python'");
    return 2;
}
