using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Durable;

/// <summary>
/// runner_type orquesta: the action's entry_point is an Orquesta workflow file (relative to the pack's
/// <c>actions/</c>); its parameters are the workflow's input. The runner starts the workflow as an orchestration
/// under the execution's id (so a redelivered request finds it instead of starting another) and hands it off: the
/// orchestration's last step records the execution's end, with the workflow's output or failed with its errors. No
/// worker waits on a workflow, which may wait days for an approval.
/// </summary>
public sealed class OrquestaRunner(IServiceProvider services) : IActionRunner
{
    public const string Type = WorkflowDefinition.RunnerType;

    public string RunnerType => Type;

    public string? OutputKey => "output";

    public async Task<RunnerResult> RunAsync(RunnerContext context, CancellationToken cancellationToken)
    {
        var (text, error) = await WorkflowFiles.ReadAsync(context.PackDirectory, context.Action.EntryPoint, cancellationToken);
        if (text is null)
        {
            return RunnerResult.Failed([], error!);
        }

        // Secret inputs stay sealed in the task hub (its history, queues and instance table): the workflow passes
        // them on as opaque text, and only the task's runner opens them.
        var input = services.GetRequiredService<ExecutionService>().SealSecrets(context.Action, context.Parameters);
        var start = new WorkflowStart(context.ExecutionId, context.TraceTag ?? context.ExecutionId, context.Action.EntryPoint!, text, input.ToJsonString())
        {
            ReuseFrom = context.ReRunTasks is null ? null : context.ReRunOf,
            ReRunTasks = context.ReRunTasks ?? [],
            TraceParent = ServerlessStorm.Engine.Diagnostics.StormTracing.Current()?.TraceParent,
        };
        await services.GetRequiredService<IWorkflowEngine>().StartAsync(start, cancellationToken);
        return RunnerResult.HandedOff();
    }
}
