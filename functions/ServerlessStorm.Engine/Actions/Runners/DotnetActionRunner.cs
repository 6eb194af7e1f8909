using System.Text.Json.Nodes;
using ServerlessStorm.ActionSdk;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>
/// runner_type dotnet: runs a C# action (<see cref="IStormAction"/>) from the pack's assembly, in this process.
/// Its result is <c>result.result</c>; its <see cref="StormActionContext.Log"/> lines are the live output.
/// On timeout the action's token is canceled and the execution ends <c>timeout</c> without waiting for it further.
/// </summary>
public sealed class DotnetActionRunner : IActionRunner
{
    public const string Type = "dotnet";

    public string RunnerType => Type;

    public string? OutputKey => "result";

    public IReadOnlyList<ParameterDefinition> RunnerParameters { get; } =
        [ParameterReader.Define("timeout", "integer", defaultValue: 600, description: "Seconds before the action is canceled and the execution times out.")];

    public async Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        if (context.PackDirectory is null || context.Action.EntryPoint is null)
        {
            return RunnerResult.Failed([], "a dotnet action needs its pack folder and an entry_point");
        }

        IStormAction action;
        try
        {
            action = (IStormAction)Activator.CreateInstance(PackAssemblies.ResolveAction(context.PackDirectory, context.Action.EntryPoint))!;
        }
        catch (PackAssemblyException ex)
        {
            return RunnerResult.Failed([], ex.Message);
        }

        var timeout = TimeSpan.FromSeconds(ParameterReader.Number(context.Parameters, "timeout") ?? 600);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        var actionContext = new StormActionContext
        {
            ExecutionId = context.ExecutionId,
            Parameters = (JsonObject)context.Parameters.DeepClone(),
            PackDirectory = context.PackDirectory,
            PackConfig = (JsonObject)context.Config.DeepClone(),
            Log = line => context.Output?.Invoke("stdout", line + "\n"),
        };
        try
        {
            var run = Task.Run(() => action.RunAsync(actionContext, limit.Token), limit.Token);
            var outcome = await run.WaitAsync(limit.Token);
            var result = new JsonObject { ["result"] = outcome.Result?.DeepClone() };
            return outcome.Succeeded ? RunnerResult.Succeeded(result) : RunnerResult.Failed(result, outcome.Error ?? "the action reported a failure");
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return new RunnerResult(ExecutionStatus.Timeout, [], $"the action did not finish within {timeout.TotalSeconds} s");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return RunnerResult.Failed([], $"{ex.GetType().Name}: {ex.Message}");
        }
    }
}
