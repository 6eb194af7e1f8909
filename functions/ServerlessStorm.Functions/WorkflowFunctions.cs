using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using ServerlessStorm.Durable;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Functions;

/// <summary>
/// Workflows in Durable Functions: the same orchestrator and activities <c>storm serve</c> runs on its local task
/// hub, here as an orchestration-triggered function and activity-triggered ones.
/// </summary>
public sealed class WorkflowFunctions(WorkflowActivities activities)
{
    [Function(WorkflowOrchestrator.Name)]
    public static Task<WorkflowEnd> WorkflowAsync([OrchestrationTrigger] TaskOrchestrationContext context) =>
        new WorkflowOrchestrator().RunAsync(context, context.GetInput<WorkflowStart>()
            ?? throw new InvalidOperationException($"orchestration {context.InstanceId} was started without its workflow"));

    [Function(RunTaskActionActivity.Name)]
    public Task<TaskActionOutcome> RunTaskAsync([ActivityTrigger] TaskActionRequest request) => activities.RunTaskAsync(request);

    [Function(DatastoreSnapshotActivity.Name)]
    public Task<Dictionary<string, string>> DatastoreSnapshotAsync([ActivityTrigger] DatastoreSnapshotRequest request) => activities.DatastoreSnapshotAsync(request);

    [Function(FinishWorkflowActivity.Name)]
    public Task<bool> FinishAsync([ActivityTrigger] WorkflowFinish finish) => activities.FinishAsync(finish);
}

/// <summary>
/// Starts and steers workflows through Durable Functions. The isolated worker hands its client only to functions
/// that bind <c>[DurableClient]</c>, so each function that may start or steer a workflow binds one and hands it over
/// (<see cref="Use"/>) before it calls the engine; every client of the app addresses the same task hub.
/// </summary>
public sealed class DurableFunctionsWorkflowEngine : IWorkflowEngine
{
    private DurableTaskClient? _client;

    public void Use(DurableTaskClient client) => _client = client;

    private DurableTaskClient Client => _client
        ?? throw new InvalidOperationException("no Durable Functions client was handed over: the function calling the workflow engine must bind [DurableClient]");

    public async Task StartAsync(WorkflowStart start, CancellationToken cancellationToken)
    {
        if (await Client.GetInstanceAsync(start.ExecutionId, getInputsAndOutputs: false, cancellationToken) is not null)
        {
            return; // started before (the request was delivered again)
        }

        await Client.ScheduleNewOrchestrationInstanceAsync(WorkflowOrchestrator.Name, start, new StartOrchestrationOptions(start.ExecutionId), cancellationToken);
    }

    public Task TerminateAsync(string executionId, string reason, CancellationToken cancellationToken) =>
        Client.TerminateInstanceAsync(executionId, reason, cancellationToken);

    public Task SuspendAsync(string executionId, string reason, CancellationToken cancellationToken) =>
        Client.SuspendInstanceAsync(executionId, reason, cancellationToken);

    public Task ResumeAsync(string executionId, string reason, CancellationToken cancellationToken) =>
        Client.ResumeInstanceAsync(executionId, reason, cancellationToken);

    public Task CompleteWaitingTaskAsync(string workflowExecutionId, string taskExecutionId, WorkflowTaskOutcome outcome, CancellationToken cancellationToken) =>
        Client.RaiseEventAsync(workflowExecutionId, WorkflowOrchestrator.InquiryEvent(taskExecutionId), TaskActionOutcome.Of(outcome), cancellationToken);
}
