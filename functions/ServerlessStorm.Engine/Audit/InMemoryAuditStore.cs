using System.Collections.Concurrent;
using System.Globalization;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Engine.Audit;

/// <summary>The audit in memory, for unit tests and for a host run without storage.</summary>
public sealed class InMemoryAuditStore(TimeProvider? time = null) : IAuditStore
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, TriggerInstanceRecord> _triggerInstances = new();
    private readonly ConcurrentDictionary<(string, string), RuleEnforcementRecord> _enforcements = new();
    private readonly ConcurrentDictionary<string, DateTimeOffset> _firstAccepted = new();
    private readonly ConcurrentDictionary<string, ExecutionRecord> _executions = new();
    private readonly Lock _executionLock = new();
    private long _version;

    public Task RecordTriggerInstanceAsync(TriggerInstanceRecord record, CancellationToken cancellationToken)
    {
        _triggerInstances[record.Id] = record;
        return Task.CompletedTask;
    }

    public Task<DateTimeOffset> FirstAcceptedAsync(string triggerInstanceId, DateTimeOffset now, CancellationToken cancellationToken) =>
        Task.FromResult(_firstAccepted.GetOrAdd(triggerInstanceId, now));

    public Task UpdateTriggerInstanceStatusAsync(string id, DateTimeOffset occurredAt, string status, string? reason, CancellationToken cancellationToken)
    {
        if (_triggerInstances.TryGetValue(id, out var record))
        {
            record.Status = status;
            record.Reason = reason;
        }

        return Task.CompletedTask;
    }

    public Task RecordRuleEnforcementAsync(RuleEnforcementRecord record, CancellationToken cancellationToken)
    {
        _enforcements[(record.TriggerInstanceId, record.RuleRef)] = record;
        return Task.CompletedTask;
    }

    public Task<bool> TryCreateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        var copy = record.Clone();
        copy.Version = NextVersion();
        var added = _executions.TryAdd(record.Id, copy);
        if (added)
        {
            record.Version = copy.Version;
        }

        return Task.FromResult(added);
    }

    public Task<ExecutionRecord?> GetExecutionAsync(string id, CancellationToken cancellationToken) =>
        Task.FromResult(_executions.TryGetValue(id, out var record) ? record.Clone() : null);

    public Task<bool> TryUpdateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        lock (_executionLock)
        {
            if (!_executions.TryGetValue(record.Id, out var current) || current.Version != record.Version)
            {
                return Task.FromResult(false);
            }

            var copy = record.Clone();
            copy.Version = NextVersion();
            _executions[record.Id] = copy;
            record.Version = copy.Version;
            return Task.FromResult(true);
        }
    }

    public Task<IReadOnlyList<ExecutionRecord>> QueryExecutionsAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        var (from, to) = query.Window(_time.GetUtcNow());
        IReadOnlyList<ExecutionRecord> result = [.. _executions.Values
            .Where(e => e.StartTimestamp >= from && e.StartTimestamp <= to && (query.Status is null || e.Status == query.Status))
            .OrderByDescending(e => e.StartTimestamp)
            .Take(query.Limit)
            .Select(e => e.Clone())];
        return Task.FromResult(result);
    }

    public Task<IReadOnlyList<TriggerInstanceRecord>> QueryTriggerInstancesAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        var (from, to) = query.Window(_time.GetUtcNow());
        IReadOnlyList<TriggerInstanceRecord> result = [.. _triggerInstances.Values
            .Where(t => t.OccurredAt >= from && t.OccurredAt <= to && (query.Status is null || t.Status == query.Status))
            .OrderByDescending(t => t.OccurredAt)
            .Take(query.Limit)];
        return Task.FromResult(result);
    }

    public Task<AuditTrace> GetTraceAsync(string traceTag, CancellationToken cancellationToken) =>
        Task.FromResult(new AuditTrace(
            traceTag,
            [.. _triggerInstances.Values.Where(t => t.TraceTag == traceTag)],
            [.. _enforcements.Values.Where(e => e.TraceTag == traceTag)],
            [.. _executions.Values.Where(e => e.TraceTag == traceTag).Select(e => e.Clone())]));

    private string NextVersion() => Interlocked.Increment(ref _version).ToString(CultureInfo.InvariantCulture);
}
