using System.Globalization;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Api;

public sealed partial class StormApi
{
    /// <summary>
    /// GET /api/v1/sensors (and StackStorm's /api/v1/sensortypes): every sensor the packs declare, StackStorm's
    /// sensor type fields plus how it runs here: its runner, state, last poll, next poll, last error and failures.
    /// </summary>
    public async Task<ApiResponse> ListSensorsAsync(CancellationToken cancellationToken)
    {
        var list = new JsonArray();
        foreach (var (sensor, runner, record) in await sensors.StatusesAsync(cancellationToken))
        {
            list.Add(new JsonObject
            {
                ["ref"] = sensor.Ref,
                ["uid"] = $"sensor_type:{sensor.Pack}:{sensor.ClassName}",
                ["pack"] = sensor.Pack,
                ["name"] = sensor.ClassName,
                ["class_name"] = sensor.ClassName,
                ["entry_point"] = sensor.EntryPoint,
                ["enabled"] = sensor.Enabled,
                // As StackStorm's API: the YAML's, or null (a Python sensor then polls on its class's default).
                ["poll_interval"] = !sensor.PollIntervalDeclared ? null
                    : sensor.PollInterval.TotalSeconds % 1 == 0 ? JsonValue.Create((int)sensor.PollInterval.TotalSeconds) : JsonValue.Create(sensor.PollInterval.TotalSeconds),
                ["trigger_types"] = new JsonArray([.. sensor.TriggerTypes.Select(t => (JsonNode)t)]),
                ["runner"] = runner,
                ["state"] = record.Status,
                ["last_poll"] = Time(record.LastPoll),
                ["next_poll"] = Time(record.NextPoll),
                ["last_error"] = record.LastError,
                ["last_error_at"] = Time(record.LastErrorAt),
                ["consecutive_failures"] = record.ConsecutiveFailures,
                ["polls"] = record.Polls,
            });
        }

        return new ApiResponse(200, list);
    }

    private static string? Time(DateTimeOffset? time) => time?.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture);
}
