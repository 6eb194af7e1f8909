using Microsoft.Extensions.Logging;

namespace ServerlessStorm.Engine.Diagnostics;

public static partial class StormLogs
{
    // 2300-2349: sensors.

    [LoggerMessage(EventId = 2300, EventName = "SensorPolled", Level = LogLevel.Debug, Message = "Sensor {Sensor} polled in {Milliseconds} ms")]
    public static partial void SensorPolled(this ILogger logger, string sensor, long milliseconds);

    [LoggerMessage(EventId = 2301, EventName = "SensorPollFailed", Level = LogLevel.Warning, Message = "Sensor {Sensor} poll failed ({Failures} in a row): {Error}")]
    public static partial void SensorPollFailed(this ILogger logger, string sensor, int failures, string error);

    [LoggerMessage(EventId = 2302, EventName = "SensorDispatchRefused", Level = LogLevel.Warning, Message = "Sensor {Sensor} dispatch of {Trigger} refused: {Reason}")]
    public static partial void SensorDispatchRefused(this ILogger logger, string sensor, string trigger, string reason);

    [LoggerMessage(EventId = 2303, EventName = "SensorDispatched", Level = LogLevel.Information, Message = "Sensor {Sensor} dispatched {Trigger} as trigger instance {Id} (trace {TraceTag})")]
    public static partial void SensorDispatched(this ILogger logger, string sensor, string trigger, string id, string traceTag);

    [LoggerMessage(EventId = 2304, EventName = "SensorLine", Level = LogLevel.Information, Message = "Sensor {Sensor} [{Level}] {Line}")]
    public static partial void SensorLine(this ILogger logger, string sensor, string level, string line);

    [LoggerMessage(EventId = 2305, EventName = "SensorLeaseLost", Level = LogLevel.Warning, Message = "Sensor {Sensor}: another instance took it over during the poll; this poll's state and status are not kept")]
    public static partial void SensorLeaseLost(this ILogger logger, string sensor);

    [LoggerMessage(EventId = 2306, EventName = "SensorNotRunHere", Level = LogLevel.Warning, Message = "Sensor {Sensor} is not run here: {Reason}")]
    public static partial void SensorNotRunHere(this ILogger logger, string sensor, string reason);

    [LoggerMessage(EventId = 2307, EventName = "SensorRunEnded", Level = LogLevel.Warning, Message = "Long-running sensor {Sensor} ended ({Error}); restarting in {Backoff}")]
    public static partial void SensorRunEnded(this ILogger logger, string sensor, string error, TimeSpan backoff);

    [LoggerMessage(EventId = 2308, EventName = "SensorRoundFailed", Level = LogLevel.Error, Message = "A round of sensor polls failed; the next round goes on")]
    public static partial void SensorRoundFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 2309, EventName = "SensorTickDropped", Level = LogLevel.Debug, Message = "Sensor tick {Tick} dropped: {Reason}")]
    public static partial void SensorTickDropped(this ILogger logger, string tick, string reason);

    [LoggerMessage(EventId = 2310, EventName = "SensorEnabledChanged", Level = LogLevel.Information, Message = "Sensor {Sensor} enabled: {Enabled} (an operator's choice, kept until changed)")]
    public static partial void SensorEnabledChanged(this ILogger logger, string sensor, bool enabled);
}
