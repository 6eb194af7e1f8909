using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Executions;

public sealed record StatusChange(string Status, DateTimeOffset At);

/// <summary>An execution as the audit keeps it. Secret parameters are already masked here.</summary>
public sealed class ExecutionRecord
{
    public required string Id { get; init; }

    public required string ActionRef { get; init; }

    public required string RunnerType { get; init; }

    public required string TraceTag { get; init; }

    public string? TriggerInstanceId { get; init; }

    public string? RuleRef { get; init; }

    /// <summary>
    /// Who the execution runs for (StackStorm's <c>context.user</c>): the API caller, the system user for a rule's
    /// action, a workflow's user for its tasks. Null only in records written before users were recorded.
    /// </summary>
    public string? User { get; init; }

    public required JsonObject Parameters { get; init; }

    /// <summary>
    /// The parameters as they crossed the bus, with secrets sealed (encrypted): what a re-run starts from. Never
    /// shown by the API.
    /// </summary>
    public JsonObject? SealedParameters { get; init; }

    /// <summary>The execution this one re-runs, if any.</summary>
    public string? ReRunOf { get; init; }

    /// <summary>
    /// A workflow re-run: the tasks to run again even though they succeeded. Every other task that succeeded in
    /// <see cref="ReRunOf"/> keeps its result and is not run again.
    /// </summary>
    public IReadOnlyList<string>? ReRunTasks { get; init; }

    /// <summary>How many times a retry policy has run this execution's action again (0 for the first run).</summary>
    public int RetryCount { get; init; }

    /// <summary>The workflow execution this one runs a task of, if any.</summary>
    public string? ParentId { get; init; }

    /// <summary>The workflow task this execution runs (with <see cref="ParentId"/>).</summary>
    public string? WorkflowTask { get; init; }

    public required string Status { get; set; }

    public List<StatusChange> History { get; init; } = [];

    public required DateTimeOffset StartTimestamp { get; init; }

    public DateTimeOffset? EndTimestamp { get; set; }

    public JsonNode? Result { get; set; }

    /// <summary>
    /// The result with the values <see cref="Result"/> masks sealed (encrypted) instead: what a workflow that uses
    /// the result is given (an inquiry's secret answer). Null when nothing is masked. Never shown by the API.
    /// </summary>
    public JsonNode? SealedResult { get; set; }

    public string? Error { get; set; }

    /// <summary>
    /// The worker process that claimed it to run (see <see cref="IWorkerRegistry"/>): while that worker lives, nobody
    /// else runs it; once it is gone, a redelivered request takes it over.
    /// </summary>
    public string? Worker { get; set; }

    /// <summary>The store's concurrency token (a Table Storage ETag); updates fail when it is stale.</summary>
    public string? Version { get; set; }

    public void Transition(string status, DateTimeOffset at)
    {
        Status = status;
        History.Add(new StatusChange(status, at));
        if (ExecutionStatus.IsTerminal(status))
        {
            EndTimestamp = at;
        }
    }

    public ExecutionRecord Clone() => new()
    {
        Id = Id,
        ActionRef = ActionRef,
        RunnerType = RunnerType,
        TraceTag = TraceTag,
        TriggerInstanceId = TriggerInstanceId,
        RuleRef = RuleRef,
        User = User,
        Parameters = (JsonObject)Parameters.DeepClone(),
        SealedParameters = (JsonObject?)SealedParameters?.DeepClone(),
        ReRunOf = ReRunOf,
        ReRunTasks = ReRunTasks,
        RetryCount = RetryCount,
        ParentId = ParentId,
        WorkflowTask = WorkflowTask,
        Status = Status,
        History = [.. History],
        StartTimestamp = StartTimestamp,
        EndTimestamp = EndTimestamp,
        Result = Result?.DeepClone(),
        SealedResult = SealedResult?.DeepClone(),
        Error = Error,
        Worker = Worker,
        Version = Version,
    };
}
