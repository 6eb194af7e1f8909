namespace ServerlessStorm.Engine.Workflows;

/// <summary>
/// Control over running workflows (the workflow engine's side of pause, resume and cancel), by the workflow
/// execution's id. A host without the workflow engine has none.
/// </summary>
public interface IWorkflowControl
{
    /// <summary>Stops the workflow for good: no task of it starts again.</summary>
    Task TerminateAsync(string executionId, string reason, CancellationToken cancellationToken);

    /// <summary>Holds the workflow: tasks already running finish, no new one starts until it is resumed.</summary>
    Task SuspendAsync(string executionId, string reason, CancellationToken cancellationToken);

    Task ResumeAsync(string executionId, string reason, CancellationToken cancellationToken);

    /// <summary>Tells a workflow that one of its tasks waiting for a person (an inquiry) has ended, and how.</summary>
    Task CompleteWaitingTaskAsync(string workflowExecutionId, string taskExecutionId, WorkflowTaskOutcome outcome, CancellationToken cancellationToken);
}
