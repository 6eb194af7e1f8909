using System.Globalization;
using System.Text.Json.Nodes;
using ServerlessStorm.ActionSdk;

namespace ExampleActions;

/// <summary>
/// examples.disk_free: how full the file system holding <c>path</c> is; fails when less than
/// <c>min_free_percent</c> is free, so a retry policy, notify or an action-trigger rule can act on it.
/// </summary>
public sealed class DiskFree : IStormAction
{
    public Task<StormActionResult> RunAsync(StormActionContext context, CancellationToken cancellationToken)
    {
        var path = context.Parameters["path"]?.GetValue<string>() ?? "/";
        var threshold = context.Parameters["min_free_percent"]?.GetValue<int>() ?? 10;
        if (!Directory.Exists(path))
        {
            return Task.FromResult(StormActionResult.Failure($"'{path}' is not a directory on this host"));
        }

        var drive = new DriveInfo(path);
        var freePercent = drive.TotalSize == 0 ? 0 : Math.Round(100.0 * drive.AvailableFreeSpace / drive.TotalSize, 1);
        context.Log($"{drive.RootDirectory.FullName}: {freePercent.ToString(CultureInfo.InvariantCulture)}% free");
        var result = new JsonObject
        {
            ["path"] = path,
            ["mount"] = drive.RootDirectory.FullName,
            ["total_bytes"] = drive.TotalSize,
            ["free_bytes"] = drive.AvailableFreeSpace,
            ["free_percent"] = freePercent,
            ["ok"] = freePercent >= threshold,
        };
        return Task.FromResult(freePercent >= threshold
            ? StormActionResult.Success(result)
            : StormActionResult.Failure($"only {freePercent.ToString(CultureInfo.InvariantCulture)}% free on {drive.RootDirectory.FullName} (threshold {threshold}%)", result));
    }
}
