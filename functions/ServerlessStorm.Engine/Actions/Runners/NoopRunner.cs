using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>runner_type noop: does nothing and succeeds (core.noop).</summary>
public sealed class NoopRunner : IActionRunner
{
    public string RunnerType => "noop";

    public Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken) =>
        Task.FromResult(RunnerResult.Succeeded([]));
}

/// <summary>runner_type echo: returns its message as stdout, in the shape of a shell result (core.echo).</summary>
public sealed class EchoRunner : IActionRunner
{
    public string RunnerType => "echo";

    public string? OutputKey => "stdout";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
        [ParameterReader.Define("message", "string", required: true, description: "The text to return.")];

    public Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        var message = ParameterReader.String(context.Parameters, "message") ?? "";
        return Task.FromResult(RunnerResult.Succeeded(new JsonObject
        {
            ["stdout"] = message,
            ["stderr"] = "",
            ["return_code"] = 0,
            ["succeeded"] = true,
            ["failed"] = false,
        }));
    }
}
