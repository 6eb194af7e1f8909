using Microsoft.Extensions.Logging;

namespace ServerlessStorm.Engine.Diagnostics;

public static partial class StormLogs
{
    // 2100-2149: pack configuration.

    [LoggerMessage(EventId = 2100, EventName = "PackConfigRenderFailed", Level = LogLevel.Warning, Message = "Pack {Pack}'s config key {Key} could not be rendered: {Reason}")]
    public static partial void PackConfigRenderFailed(this ILogger logger, string pack, string key, string reason);

    [LoggerMessage(EventId = 2101, EventName = "PackConfigsRead", Level = LogLevel.Information, Message = "Read {Count} pack config(s) from {Source}")]
    public static partial void PackConfigsRead(this ILogger logger, int count, string source);
}
