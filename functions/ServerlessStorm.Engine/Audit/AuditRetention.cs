using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Audit;

/// <summary>
/// What purging one day deleted, and the executions it kept because they have not finished. The counts are null
/// when the store deleted the day whole (its tables) without reading every record to count them.
/// </summary>
public sealed record AuditDayPurge(
    DateOnly Day,
    int? TriggerInstances,
    int? RuleEnforcements,
    int? Executions,
    int Payloads,
    IReadOnlySet<string> KeptExecutions)
{
    /// <summary>Rows of live output deleted with the executions (null: deleted whole, not counted).</summary>
    public int? OutputRows { get; init; }

    public bool DeletedWhole => Executions is null;
}

/// <summary>A purge's totals; <see cref="More"/> when it stopped at its time budget with expired days left.</summary>
public sealed record AuditPurgeSummary(DateOnly Before, IReadOnlyList<AuditDayPurge> Days, bool More)
{
    /// <summary>The counts below are of the days that were counted; these were deleted whole.</summary>
    public int DaysDeletedWhole => Days.Count(d => d.DeletedWhole);

    public int TriggerInstances => Days.Sum(d => d.TriggerInstances ?? 0);

    public int RuleEnforcements => Days.Sum(d => d.RuleEnforcements ?? 0);

    public int Executions => Days.Sum(d => d.Executions ?? 0);

    public int Payloads => Days.Sum(d => d.Payloads);

    public int OutputRows => Days.Sum(d => d.OutputRows ?? 0);

    public int KeptExecutions => Days.Sum(d => d.KeptExecutions.Count);
}

/// <summary>An execution as retention sees it: whether it has finished, and the workflow it belongs to.</summary>
public readonly record struct ExecutionState(string Id, string Status, string? ParentId);

/// <summary>
/// Audit retention: whole UTC days older than <see cref="StormOptions.Retention"/> leave the audit (trigger instances,
/// rule enforcements, executions, their payloads and live output), oldest first, a day at a time, so a purge that
/// stops part way has deleted whole days and the next one goes on from there. An execution that has not finished is
/// never deleted, nor is anything of its workflow or the trigger instance that caused it.
/// </summary>
public sealed class AuditRetention(IAuditStore audit, IExecutionOutputStore output, IOptions<StormOptions> options, TimeProvider time, ILogger<AuditRetention> logger)
{
    /// <summary>Days kept when configuration says nothing (StackStorm keeps everything until a TTL is set; this bounds the audit from the start).</summary>
    public const int DefaultDays = 30;

    /// <summary>The first day kept under the configured retention; null when retention is off (0 days).</summary>
    public DateOnly? FirstKeptDay()
    {
        var days = options.Value.Retention;
        return days <= 0 ? null : Today.AddDays(-days);
    }

    public DateOnly Today => DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);

    /// <summary>What the configured retention says is expired; null when retention is off.</summary>
    public async Task<AuditPurgeSummary?> PurgeExpiredAsync(CancellationToken cancellationToken) =>
        FirstKeptDay() is { } before ? await PurgeAsync(before, budget: null, progress: null, cancellationToken) : null;

    /// <summary>
    /// Deletes the days before <paramref name="before"/> (and after <paramref name="after"/>: where an earlier call that ran
    /// out of budget stopped), oldest first. With a <paramref name="budget"/>, no new day is started once it is spent
    /// (<see cref="AuditPurgeSummary.More"/> then says days are left).
    /// </summary>
    public async Task<AuditPurgeSummary> PurgeAsync(DateOnly before, TimeSpan? budget, IProgress<AuditDayPurge>? progress, CancellationToken cancellationToken, DateOnly? after = null)
    {
        if (before > Today)
        {
            throw new ArgumentOutOfRangeException(nameof(before), before, $"the purge date {before:yyyy-MM-dd} is in the future: records are purged by whole past days, up to today at most");
        }

        var started = time.GetTimestamp();
        var purged = new List<AuditDayPurge>();
        var days = await audit.DaysBeforeAsync(before, cancellationToken);
        foreach (var day in days.Where(d => after is null || d > after))
        {
            if (budget is { } limit && time.GetElapsedTime(started) >= limit)
            {
                return new AuditPurgeSummary(before, purged, More: true);
            }

            var clock = Stopwatch.StartNew();
            var result = await audit.PurgeDayAsync(day, cancellationToken);
            result = result with { OutputRows = await output.PurgeDayAsync(day, result.KeptExecutions, cancellationToken) };
            if (result.DeletedWhole)
            {
                logger.AuditDayDeletedWhole(day, result.Payloads, clock.ElapsedMilliseconds);
            }
            else
            {
                logger.AuditDayPurged(day, result.Executions ?? 0, result.TriggerInstances ?? 0, result.RuleEnforcements ?? 0, result.Payloads, result.OutputRows ?? 0, result.KeptExecutions.Count, clock.ElapsedMilliseconds);
            }
            purged.Add(result);
            progress?.Report(result);
        }

        return new AuditPurgeSummary(before, purged, More: false);
    }

    /// <summary>The UTC day an execution was created, read from its id (<see cref="StormIds"/>); null for another kind of id.</summary>
    public static DateOnly? DayOfExecution(string id) =>
        StormIds.TryGetTimestamp(id, out var at) ? DateOnly.FromDateTime(at.UtcDateTime) : null;

    /// <summary>
    /// Which of a day's executions stay: those not finished, and those whose workflow (parent, grandparent, …) has not
    /// finished, for a workflow still running needs its finished tasks' records. A parent outside the day is looked up.
    /// </summary>
    public static async Task<HashSet<string>> KeptExecutionsAsync(IReadOnlyCollection<ExecutionState> day,
        Func<string, CancellationToken, Task<ExecutionState?>> lookUp, CancellationToken cancellationToken)
    {
        var known = day.ToDictionary(e => e.Id, e => (ExecutionState?)e, StringComparer.Ordinal);
        var unfinished = new Dictionary<string, bool>(StringComparer.Ordinal);

        async Task<bool> UnfinishedAsync(string id, int depth)
        {
            if (unfinished.TryGetValue(id, out var answer))
            {
                return answer;
            }

            if (!known.TryGetValue(id, out var state))
            {
                known[id] = state = await lookUp(id, cancellationToken);
            }

            // A lost parent no longer holds anything; a chain deeper than any workflow nests is cut short.
            answer = state is { } s && depth < 64 && (!ExecutionStatus.IsTerminal(s.Status) || (s.ParentId is { } parent && await UnfinishedAsync(parent, depth + 1)));
            unfinished[id] = answer;
            return answer;
        }

        var kept = new HashSet<string>(StringComparer.Ordinal);
        foreach (var execution in day)
        {
            if (await UnfinishedAsync(execution.Id, 0))
            {
                kept.Add(execution.Id);
            }
        }

        return kept;
    }

    /// <summary>
    /// The ids under which a trigger instance claimed its first acceptance (<see cref="IAuditStore.FirstAcceptedAsync"/>):
    /// a webhook's delivery id (a generated id claims nothing), a timer occurrence's claim.
    /// </summary>
    public static IEnumerable<string> DeliveryClaims(string triggerInstanceId, string? triggerType)
    {
        if (triggerType is not null && CoreTriggers.Timers.Contains(triggerType))
        {
            yield return TimerSensor.ClaimId(triggerInstanceId);
        }
        else if (!StormIds.TryGetTimestamp(triggerInstanceId, out _))
        {
            yield return triggerInstanceId;
        }
    }
}
