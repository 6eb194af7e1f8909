using Microsoft.Extensions.Logging;

namespace ServerlessStorm.Engine.Diagnostics;

public static partial class StormLogs
{
    // 2000-2049: Python (python-script actions and Python sensors).

    [LoggerMessage(EventId = 2000, EventName = "PythonProcessStarted", Level = LogLevel.Debug, Message = "Python {Mode} {File} started as process {ProcessId} with {Interpreter}")]
    public static partial void PythonProcessStarted(this ILogger logger, string mode, string file, int processId, string interpreter);

    [LoggerMessage(EventId = 2001, EventName = "PythonProcessKilled", Level = LogLevel.Warning, Message = "Python {Mode} {File} (process {ProcessId}) and everything it started were killed: {Reason}")]
    public static partial void PythonProcessKilled(this ILogger logger, string mode, string file, int processId, string reason);

    [LoggerMessage(EventId = 2002, EventName = "PythonProtocolError", Level = LogLevel.Warning, Message = "Python {Mode} {File} sent a message that is not a JSON object, ignored: {Error}")]
    public static partial void PythonProtocolError(this ILogger logger, string mode, string file, string error);

    [LoggerMessage(EventId = 2003, EventName = "PythonSensorDispatchRefused", Level = LogLevel.Warning, Message = "Sensor {Sensor} dispatched {Trigger}, refused: {Reason}")]
    public static partial void PythonSensorDispatchRefused(this ILogger logger, string sensor, string trigger, string reason);
}
