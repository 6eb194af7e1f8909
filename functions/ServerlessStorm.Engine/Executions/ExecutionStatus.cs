namespace ServerlessStorm.Engine.Executions;

/// <summary>StackStorm's execution statuses.</summary>
public static class ExecutionStatus
{
    public const string Requested = "requested";
    public const string Scheduled = "scheduled";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Timeout = "timeout";

    public static readonly IReadOnlyList<string> All = [Requested, Scheduled, Running, Succeeded, Failed, Timeout];

    public static bool IsTerminal(string status) => status is Succeeded or Failed or Timeout;
}
