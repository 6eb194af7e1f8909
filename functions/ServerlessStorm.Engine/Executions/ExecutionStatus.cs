namespace ServerlessStorm.Engine.Executions;

/// <summary>StackStorm's execution statuses.</summary>
public static class ExecutionStatus
{
    public const string Requested = "requested";
    public const string Scheduled = "scheduled";

    /// <summary>Held back by a concurrency policy until a slot frees.</summary>
    public const string Delayed = "delayed";
    public const string Running = "running";

    /// <summary>A workflow held by an operator: its running tasks finish, no new one starts until it is resumed.</summary>
    public const string Paused = "paused";

    /// <summary>Waiting for a person: an inquiry (core.ask) not yet answered.</summary>
    public const string Pending = "pending";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Timeout = "timeout";
    public const string Canceling = "canceling";
    public const string Canceled = "canceled";

    public static readonly IReadOnlyList<string> All = [Requested, Delayed, Scheduled, Running, Paused, Pending, Succeeded, Failed, Timeout, Canceling, Canceled];

    public static bool IsTerminal(string status) => status is Succeeded or Failed or Timeout or Canceled;
}
