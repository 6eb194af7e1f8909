using Microsoft.Extensions.Logging;

namespace ServerlessStorm.Engine.Diagnostics;

public static partial class StormLogs
{
    // 2400-2449: the Python host (Python wrappers run on the Python Function app over Service Bus).
    [LoggerMessage(EventId = 2400, EventName = "PythonLaunchSent", Level = LogLevel.Debug, Message = "Python launch {Id} (pack {Pack}) sent to the Python host; it is killed there at {Deadline}")]
    public static partial void PythonLaunchSent(this ILogger logger, string id, string pack, DateTimeOffset deadline);

    [LoggerMessage(EventId = 2401, EventName = "PythonLaunchExited", Level = LogLevel.Debug, Message = "Python launch {Id} ended on the Python host: exit {ExitCode}")]
    public static partial void PythonLaunchExited(this ILogger logger, string id, string exitCode);

    [LoggerMessage(EventId = 2402, EventName = "PythonKillSent", Level = LogLevel.Information, Message = "Python launch {Id}: kill sent to the Python host")]
    public static partial void PythonKillSent(this ILogger logger, string id);

    [LoggerMessage(EventId = 2403, EventName = "PythonHostSilent", Level = LogLevel.Warning, Message = "Python launch {Id}: the Python host sent no exit by the deadline; the launch is treated as killed")]
    public static partial void PythonHostSilent(this ILogger logger, string id);
}
