using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Durable;

/// <summary>
/// runner_type orquesta: the action's entry_point is an Orquesta workflow file (relative to the pack's
/// <c>actions/</c>); its parameters are the workflow's input. The workflow runs as an orchestration on the task hub
/// under the execution's id (so a redelivered request finds it instead of starting another); the execution ends
/// with the workflow's output, or failed with its errors.
/// </summary>
public sealed class OrquestaRunner(IServiceProvider services) : IActionRunner
{
    public const string Type = ServerlessStorm.Engine.Workflows.WorkflowDefinition.RunnerType;

    public string RunnerType => Type;

    public string? OutputKey => "output";

    public async Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        if (context.PackDirectory is null || context.Action.EntryPoint is null)
        {
            return RunnerResult.Failed([], "an orquesta action needs its pack folder and an entry_point (the workflow file)");
        }

        if (!ServerlessStorm.Engine.Packs.PackFiles.TryResolve(context.PackDirectory, context.Action.EntryPoint, out var file) || !File.Exists(file))
        {
            return RunnerResult.Failed([], $"workflow file '{context.Action.EntryPoint}' does not exist in the pack's actions folder");
        }

        var hub = services.GetRequiredService<WorkflowTaskHub>();
        var start = new WorkflowStart(context.ExecutionId, context.TraceTag ?? context.ExecutionId, context.Action.EntryPoint,
            await File.ReadAllTextAsync(file, cancellationToken), context.Parameters.ToJsonString())
        {
            ReuseFrom = context.ReRunTasks is null ? null : context.ReRunOf,
            ReRunTasks = context.ReRunTasks ?? [],
        };
        await hub.StartWorkflowAsync(context.ExecutionId, start);
        var end = await hub.WaitAsync(context.ExecutionId, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        var result = new JsonObject
        {
            ["output"] = end?.Output is null ? null : JsonNode.Parse(end.Output),
            ["errors"] = new JsonArray([.. (end?.Errors ?? []).Select(e => (JsonNode)e)]),
        };
        return end?.Status == ExecutionStatus.Succeeded
            ? RunnerResult.Succeeded(result)
            : RunnerResult.Failed(result, string.Join("; ", end?.Errors ?? ["the workflow did not end"]));
    }
}
