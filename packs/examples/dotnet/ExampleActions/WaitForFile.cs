using System.Text.Json.Nodes;
using ServerlessStorm.ActionSdk;

namespace ExampleActions;

/// <summary>
/// examples.wait_for_file: waits until a file exists (a deploy's done-marker, a lock released), checking every
/// <c>poll_seconds</c>; ends when it appears, or when the action's timeout or a cancel request stops it.
/// </summary>
public sealed class WaitForFile : IStormAction
{
    public async Task<StormActionResult> RunAsync(StormActionContext context, CancellationToken cancellationToken)
    {
        var path = context.Parameters["path"]!.GetValue<string>();
        var poll = TimeSpan.FromSeconds(context.Parameters["poll_seconds"]?.GetValue<double>() ?? 1);
        var started = DateTimeOffset.UtcNow;
        while (!File.Exists(path))
        {
            context.Log($"waiting for {path}");
            await Task.Delay(poll, cancellationToken);
        }

        return StormActionResult.Success(new JsonObject { ["path"] = path, ["waited_seconds"] = Math.Round((DateTimeOffset.UtcNow - started).TotalSeconds, 1) });
    }
}
