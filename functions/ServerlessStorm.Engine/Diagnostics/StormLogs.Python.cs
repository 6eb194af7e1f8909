using Microsoft.Extensions.Logging;

namespace ServerlessStorm.Engine.Diagnostics;

public static partial class StormLogs
{
    // 2000-2049: Python (python-script actions and Python sensors).

    [LoggerMessage(EventId = 2000, EventName = "PythonProcessStarted", Level = LogLevel.Debug, Message = "Python {Mode} {File} started (run {RunId}) with {Interpreter}")]
    public static partial void PythonProcessStarted(this ILogger logger, string mode, string file, string runId, string interpreter);

    [LoggerMessage(EventId = 2001, EventName = "PythonProcessKilled", Level = LogLevel.Warning, Message = "Python {Mode} {File} (run {RunId}) and everything it started were killed: {Reason}")]
    public static partial void PythonProcessKilled(this ILogger logger, string mode, string file, string runId, string reason);

    [LoggerMessage(EventId = 2002, EventName = "PythonProtocolError", Level = LogLevel.Warning, Message = "Python {Mode} {File} sent a message that is not a JSON object, ignored: {Error}")]
    public static partial void PythonProtocolError(this ILogger logger, string mode, string file, string error);

    [LoggerMessage(EventId = 2003, EventName = "PythonSensorDispatchRefused", Level = LogLevel.Warning, Message = "Sensor {Sensor} dispatched {Trigger}, refused: {Reason}")]
    public static partial void PythonSensorDispatchRefused(this ILogger logger, string sensor, string trigger, string reason);

    [LoggerMessage(EventId = 2004, EventName = "PythonEnvIgnored", Level = LogLevel.Information, Message = "Action {Action}: {Variable} in its env is ignored (the module path is the pack's, as in StackStorm)")]
    public static partial void PythonEnvIgnored(this ILogger logger, string action, string variable);
}
