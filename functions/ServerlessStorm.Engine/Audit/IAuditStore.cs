using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Engine.Audit;

/// <summary>
/// The audit trail port. Every write is idempotent on the record's id, so a redelivered message rewrites the same
/// row instead of adding one.
/// </summary>
public interface IAuditStore
{
    Task RecordTriggerInstanceAsync(TriggerInstanceRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// For a trigger instance whose id the sender chose (a webhook's delivery id): the time it was first accepted,
    /// <paramref name="now"/> the first time. A redelivery keeps that time, so it finds the same rows and the same
    /// executions as the first delivery, however much later it comes.
    /// </summary>
    Task<DateTimeOffset> FirstAcceptedAsync(string triggerInstanceId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Sets a recorded trigger instance's status (<paramref name="occurredAt"/> locates its time-index row); no-op when it was never recorded.</summary>
    Task UpdateTriggerInstanceStatusAsync(string id, DateTimeOffset occurredAt, string status, string? reason, CancellationToken cancellationToken);

    Task RecordRuleEnforcementAsync(RuleEnforcementRecord record, CancellationToken cancellationToken);

    /// <summary>Adds the execution; false when one with that id already exists.</summary>
    Task<bool> TryCreateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken);

    Task<ExecutionRecord?> GetExecutionAsync(string id, CancellationToken cancellationToken);

    /// <summary>Replaces the execution if nobody changed it since it was read (its <see cref="ExecutionRecord.Version"/>).</summary>
    Task<bool> TryUpdateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken);

    /// <summary>Executions started in the query's window, newest first.</summary>
    Task<IReadOnlyList<ExecutionRecord>> QueryExecutionsAsync(AuditQuery query, CancellationToken cancellationToken);

    /// <summary>Trigger instances that occurred in the query's window, newest first.</summary>
    Task<IReadOnlyList<TriggerInstanceRecord>> QueryTriggerInstancesAsync(AuditQuery query, CancellationToken cancellationToken);

    Task<AuditTrace> GetTraceAsync(string traceTag, CancellationToken cancellationToken);

    /// <summary>The UTC days before <paramref name="before"/> that hold records, oldest first.</summary>
    Task<IReadOnlyList<DateOnly>> DaysBeforeAsync(DateOnly before, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes one UTC day of the audit: the trigger instances that occurred that day with their rule enforcements,
    /// the executions created that day, their trace entries and the payloads kept beside them. Executions that have
    /// not finished stay, with the executions of their workflows and the trigger instances that caused them (see
    /// <see cref="AuditRetention.KeptExecutionsAsync"/>).
    /// </summary>
    Task<AuditDayPurge> PurgeDayAsync(DateOnly day, CancellationToken cancellationToken);
}
