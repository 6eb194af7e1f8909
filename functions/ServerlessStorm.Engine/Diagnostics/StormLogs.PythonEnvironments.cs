using Microsoft.Extensions.Logging;

namespace ServerlessStorm.Engine.Diagnostics;

public static partial class StormLogs
{
    // 2200-2249: Python environments (packs' virtualenvs).

    [LoggerMessage(EventId = 2200, EventName = "VirtualenvBuilding", Level = LogLevel.Information, Message = "Building the virtualenv of pack {Pack}: its virtualenv {Reason}")]
    public static partial void VirtualenvBuilding(ILogger logger, string pack, string reason);

    [LoggerMessage(EventId = 2201, EventName = "VirtualenvBuilt", Level = LogLevel.Information, Message = "The virtualenv of pack {Pack} is built at {Path} in {ElapsedMs} ms")]
    public static partial void VirtualenvBuilt(ILogger logger, string pack, string path, long elapsedMs);

    [LoggerMessage(EventId = 2202, EventName = "VirtualenvBuildFailed", Level = LogLevel.Error, Message = "The virtualenv of pack {Pack} could not be built (any previous one is kept): {Error}")]
    public static partial void VirtualenvBuildFailed(ILogger logger, string pack, string error);

    [LoggerMessage(EventId = 2203, EventName = "VirtualenvLockWaiting", Level = LogLevel.Information, Message = "Waiting for {LockFile}: another process is building the virtualenv of pack {Pack}")]
    public static partial void VirtualenvLockWaiting(ILogger logger, string pack, string lockFile);

    [LoggerMessage(EventId = 2204, EventName = "VirtualenvNotReady", Level = LogLevel.Warning, Message = "The virtualenv of pack {Pack} {Reason}; its Python code cannot run until it is built (storm pack install)")]
    public static partial void VirtualenvNotReady(ILogger logger, string pack, string reason);
}
