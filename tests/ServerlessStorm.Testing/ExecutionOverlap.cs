using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Testing;

public static class ExecutionOverlap
{
    /// <summary>The most executions that were running at the same moment, from their recorded running and end times.</summary>
    public static int MaxRunningAtOnce(IEnumerable<ExecutionRecord> executions)
    {
        var edges = executions
            .Where(e => e.EndTimestamp is not null && e.History.Any(h => h.Status == ExecutionStatus.Running))
            .SelectMany(e => new[] { (At: e.History.Last(h => h.Status == ExecutionStatus.Running).At, Delta: 1), (At: e.EndTimestamp!.Value, Delta: -1) })
            .OrderBy(edge => edge.At).ThenBy(edge => edge.Delta); // an end and a start at the same instant do not overlap
        int running = 0, max = 0;
        foreach (var edge in edges)
        {
            running += edge.Delta;
            max = Math.Max(max, running);
        }

        return max;
    }
}
