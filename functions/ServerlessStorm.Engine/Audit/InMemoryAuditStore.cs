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

    public Task<IReadOnlyList<DateOnly>> DaysBeforeAsync(DateOnly before, CancellationToken cancellationToken)
    {
        IReadOnlyList<DateOnly> days = [.. _triggerInstances.Values.Select(t => Day(t.OccurredAt))
            .Concat(_enforcements.Values.Select(DayOf))
            .Concat(_executions.Values.Select(DayOf))
            .Where(d => d < before).Distinct().Order()];
        return Task.FromResult(days);
    }

    public async Task<AuditDayPurge> PurgeDayAsync(DateOnly day, CancellationToken cancellationToken)
    {
        var executions = _executions.Values.Where(e => DayOf(e) == day).ToList();
        var kept = await AuditRetention.KeptExecutionsAsync([.. executions.Select(e => new ExecutionState(e.Id, e.Status, e.ParentId))],
            (id, _) => Task.FromResult(_executions.TryGetValue(id, out var e) ? new ExecutionState(e.Id, e.Status, e.ParentId) : (ExecutionState?)null), cancellationToken);
        var keptCauses = executions.Where(e => kept.Contains(e.Id)).Select(e => e.TriggerInstanceId).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var purgedExecutions = executions.Count(e => !kept.Contains(e.Id) && _executions.TryRemove(e.Id, out _));
        var triggerInstances = _triggerInstances.Values.Where(t => Day(t.OccurredAt) == day && !keptCauses.Contains(t.Id)).ToList();
        foreach (var instance in triggerInstances)
        {
            _triggerInstances.TryRemove(instance.Id, out _);
            foreach (var claim in AuditRetention.DeliveryClaims(instance.Id, instance.TriggerType))
            {
                _firstAccepted.TryRemove(claim, out _);
            }
        }

        var enforcements = _enforcements.Where(e => DayOf(e.Value) == day && !keptCauses.Contains(e.Value.TriggerInstanceId)).Count(e => _enforcements.TryRemove(e.Key, out _));
        return new AuditDayPurge(day, triggerInstances.Count, enforcements, purgedExecutions, 0, kept);
    }

    private static DateOnly Day(DateTimeOffset at) => DateOnly.FromDateTime(at.UtcDateTime);

    private static DateOnly DayOf(RuleEnforcementRecord enforcement) => Day(enforcement.TriggerInstanceOccurredAt ?? enforcement.EnforcedAt);

    private static DateOnly DayOf(ExecutionRecord execution) => AuditRetention.DayOfExecution(execution.Id) ?? Day(execution.StartTimestamp);

    private string NextVersion() => Interlocked.Increment(ref _version).ToString(CultureInfo.InvariantCulture);
}
