using System.Text.Json;
using DurableTask.AzureStorage;
using DurableTask.Core;
using DurableTask.Core.Exceptions;
using Microsoft.DurableTask.Worker.Shims;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Durable;

/// <summary>Workflow engine settings (configuration section <c>Storm:Workflows</c>).</summary>
public sealed class WorkflowOptions
{
    /// <summary>The longest a task hub queue waits between polls when idle (Durable's default is 30 s).</summary>
    public TimeSpan MaxQueuePollingInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How long a message a dead host was working on stays hidden before another host takes it.</summary>
    public TimeSpan VisibilityTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long a host's claim on a task hub partition lasts unless renewed (a dead host's expires).</summary>
    public TimeSpan LeaseInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Keep a running workflow's orchestrator in memory between its steps instead of replaying its whole history at
    /// each one, as Durable's extended sessions do; without it a with-items of n items costs O(n²).
    /// </summary>
    public bool ExtendedSessions { get; set; } = true;
}

/// <summary>
/// The local workflow engine: DurableTask.Core's task hub on its Azure Storage backend (the backend Durable Functions
/// uses), here over Azurite, running <see cref="WorkflowOrchestrator"/> through Microsoft.DurableTask's shims — so the
/// same orchestrator class runs here and in the Function app, and a workflow in flight survives a restart.
/// </summary>
public sealed class WorkflowTaskHub : IHostedService, IWorkflowEngine, IAsyncDisposable
{
    private readonly AzureStorageOrchestrationService _service;
    private readonly TaskHubWorker _worker;
    private readonly TaskHubClient _client;
    private readonly Lazy<Task> _started;
    private readonly IServiceProvider _services;

    public WorkflowTaskHub(IOptions<AzureStorageOptions> storage, IOptions<WorkflowOptions> options, IServiceProvider services)
    {
        _services = services;
        _service = new AzureStorageOrchestrationService(Settings(storage.Value, TaskHubName(storage.Value.TablePrefix), options.Value));
        _worker = new TaskHubWorker(_service);
        AddWorkflows(_worker, () => services.GetRequiredService<WorkflowActivities>());
        _client = new TaskHubClient(_service);
        _started = new(async () =>
        {
            await _service.CreateIfNotExistsAsync();
            await _worker.StartAsync();
        });
    }

    /// <summary>The task hub's storage settings: Durable's Azure Storage backend, polled and leased as <paramref name="options"/> say.</summary>
    public static AzureStorageOrchestrationServiceSettings Settings(AzureStorageOptions storage, string taskHubName, WorkflowOptions options) => new()
    {
        // The same account, reached the same way, as every other storage client of the host.
        StorageAccountClientProvider = storage.UsesEndpoints
            ? new StorageAccountClientProvider(storage.BlobServiceUri!, storage.QueueServiceUri!, storage.TableServiceUri!,
                storage.TokenCredential ?? AzureIdentity.Credential(storage.Credential, storage.ClientId))
            : new StorageAccountClientProvider(storage.ConnectionString),
        TaskHubName = taskHubName,
        MaxQueuePollingInterval = options.MaxQueuePollingInterval,
        WorkItemQueueVisibilityTimeout = options.VisibilityTimeout,
        ControlQueueVisibilityTimeout = options.VisibilityTimeout,
        LeaseInterval = options.LeaseInterval,
        LeaseRenewInterval = options.LeaseInterval / 3,
        LeaseAcquireInterval = options.LeaseInterval / 3,
        ExtendedSessionsEnabled = options.ExtendedSessions,
        ExtendedSessionIdleTimeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>Registers the workflow orchestrator and its activities with <paramref name="worker"/>.</summary>
    public static void AddWorkflows(TaskHubWorker worker, Func<WorkflowActivities> activities)
    {
        worker.AddTaskOrchestrations(Orchestration(WorkflowOrchestrator.Name, () => new WorkflowOrchestrator()));
        worker.AddTaskActivities(
            new Creator<TaskActivity>(RunTaskActionActivity.Name,
                () => DurableTaskShimFactory.Default.CreateActivity(RunTaskActionActivity.Name, new RunTaskActionActivity(activities()))),
            new Creator<TaskActivity>(FinishWorkflowActivity.Name,
                () => DurableTaskShimFactory.Default.CreateActivity(FinishWorkflowActivity.Name, new FinishWorkflowActivity(activities()))),
            new Creator<TaskActivity>(DatastoreSnapshotActivity.Name,
                () => DurableTaskShimFactory.Default.CreateActivity(DatastoreSnapshotActivity.Name, new DatastoreSnapshotActivity(activities()))));
    }

    /// <summary>An orchestrator written against Microsoft.DurableTask, as DurableTask.Core runs it (through the shim).</summary>
    public static ObjectCreator<TaskOrchestration> Orchestration(string name, Func<Microsoft.DurableTask.ITaskOrchestrator> create) =>
        new Creator<TaskOrchestration>(name, () => DurableTaskShimFactory.Default.CreateOrchestration(name, create()));

    /// <summary>Task hub names are 3–45 letters and digits, starting with a letter.</summary>
    public static string TaskHubName(string tablePrefix)
    {
        var name = new string([.. (tablePrefix + "workflows").Where(char.IsAsciiLetterOrDigit)]);
        return char.IsAsciiLetter(name[0]) ? name[..Math.Min(45, name.Length)] : ("w" + name)[..Math.Min(45, name.Length + 1)];
    }

    /// <summary>
    /// Starts the task hub with the host when the packs have workflows (so workflows in flight resume at once);
    /// otherwise it starts with the first workflow, and a host without workflows polls no task hub queues.
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken) =>
        _services.GetRequiredService<ServerlessStorm.Engine.Packs.PackCatalog>().Actions.Values.Any(a => a.RunnerType == OrquestaRunner.Type)
            ? _started.Value
            : Task.CompletedTask;

    /// <summary>
    /// Stops the worker, waiting no longer than <paramref name="cancellationToken"/> allows: with its storage gone the
    /// worker's own stop can wait on it for minutes, and what it leaves is taken up from the task hub at the next start.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_started.IsValueCreated && Interlocked.Exchange(ref _stopping, 1) == 0)
        {
            try
            {
                await _worker.StopAsync(isForced: true).WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Given up on: the orchestrations and their leases are in storage, and resume at the next start.
            }
        }
    }

    private int _stopping;

    public async Task StartAsync(WorkflowStart start, CancellationToken cancellationToken)
    {
        await _started.Value;
        try
        {
            await _client.CreateOrchestrationInstanceAsync(WorkflowOrchestrator.Name, "", start.ExecutionId, start);
        }
        catch (OrchestrationAlreadyExistsException)
        {
            // Started before (the request was delivered again): wait for that one.
        }
    }

    /// <summary>The orchestration's state as the task hub keeps it (null when there is none by that id).</summary>
    public async Task<OrchestrationState?> GetStateAsync(string instanceId)
    {
        await _started.Value;
        return await _client.GetOrchestrationStateAsync(instanceId);
    }

    /// <summary>The orchestration's recorded history (JSON, as the task hub keeps it), for diagnosis and replay checks.</summary>
    public async Task<string?> GetHistoryAsync(string instanceId)
    {
        await _started.Value;
        return await _client.GetOrchestrationStateAsync(instanceId) is { } state
            ? await _service.GetOrchestrationHistoryAsync(instanceId, state.OrchestrationInstance.ExecutionId)
            : null;
    }

    public async Task TerminateAsync(string executionId, string reason, CancellationToken cancellationToken)
    {
        await _started.Value;
        await _client.TerminateInstanceAsync(new OrchestrationInstance { InstanceId = executionId }, reason);
    }

    public async Task SuspendAsync(string executionId, string reason, CancellationToken cancellationToken)
    {
        await _started.Value;
        await _client.SuspendInstanceAsync(new OrchestrationInstance { InstanceId = executionId }, reason);
    }

    public async Task ResumeAsync(string executionId, string reason, CancellationToken cancellationToken)
    {
        await _started.Value;
        await _client.ResumeInstanceAsync(new OrchestrationInstance { InstanceId = executionId }, reason);
    }

    public async Task CompleteWaitingTaskAsync(string workflowExecutionId, string taskExecutionId, WorkflowTaskOutcome outcome, CancellationToken cancellationToken)
    {
        await _started.Value;
        await _client.RaiseEventAsync(new OrchestrationInstance { InstanceId = workflowExecutionId }, WorkflowOrchestrator.InquiryEvent(taskExecutionId),
            TaskActionOutcome.Of(outcome));
    }

    public async ValueTask DisposeAsync()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await StopAsync(deadline.Token);
    }

    private sealed class Creator<T> : ObjectCreator<T>
    {
        private readonly Func<T> _create;

        public Creator(string name, Func<T> create)
        {
            Name = name;
            Version = "";
            _create = create;
        }

        public override T Create() => _create();
    }
}
