using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Durable;

/// <summary>
/// Where workflows run: the local task hub in <c>storm serve</c>, Durable Functions in the Function app. Both run
/// <see cref="WorkflowOrchestrator"/>; only the client that starts and steers its orchestrations differs.
/// </summary>
public interface IWorkflowEngine : IWorkflowControl
{
    /// <summary>Starts the workflow as the orchestration named by its execution id; one already started under that id is left as it is.</summary>
    Task StartAsync(WorkflowStart start, CancellationToken cancellationToken);
}
