using System.Text.Json.Nodes;
using ServerlessStorm.ActionSdk;

namespace ExampleActions;

/// <summary>
/// The examples.NewFilesSensor polling sensor: for each rule on <c>examples.new_file</c> it lists the rule's
/// <c>directory</c> and dispatches one trigger per file that was not there at the last poll. The names it has seen
/// are its kept state (no process stays up between polls); how many it dispatched in all is in the datastore.
/// A directory that does not exist fails the poll, which is recorded as the sensor's last error.
/// </summary>
public sealed class NewFilesSensor : IStormPollingSensor
{
    public async Task PollAsync(StormSensorContext context, CancellationToken cancellationToken)
    {
        var seenByTrigger = context.State["seen"] as JsonObject ?? [];
        context.State["seen"] = seenByTrigger;
        var dispatched = 0;
        foreach (var trigger in context.Triggers)
        {
            var directory = trigger.Parameters["directory"]?.GetValue<string>();
            if (directory is null)
            {
                continue;
            }

            if (!Directory.Exists(directory))
            {
                throw new DirectoryNotFoundException($"directory '{directory}' does not exist");
            }

            var seen = (seenByTrigger[trigger.Ref] as JsonArray)?.Select(n => n!.GetValue<string>()).ToHashSet(StringComparer.Ordinal) ?? [];
            var now = Directory.EnumerateFiles(directory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
            foreach (var file in now.Where(f => !seen.Contains(f)))
            {
                var size = new FileInfo(Path.Combine(directory, file)).Length;
                await context.DispatchAsync(trigger.Ref, new JsonObject { ["directory"] = directory, ["file"] = file, ["size"] = size }, cancellationToken: cancellationToken);
                dispatched++;
            }

            seenByTrigger[trigger.Ref] = new JsonArray([.. now.Select(f => (JsonNode)f)]);
        }

        if (dispatched > 0)
        {
            var total = int.TryParse(await context.GetValueAsync("dispatched", cancellationToken: cancellationToken), out var before) ? before : 0;
            await context.SetValueAsync("dispatched", (total + dispatched).ToString(System.Globalization.CultureInfo.InvariantCulture), cancellationToken: cancellationToken);
            context.Log("info", $"dispatched {dispatched} new file(s)");
        }
    }
}
