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
            list.Add(SensorView(sensor, runner, record));
        }

        return new ApiResponse(200, list);
    }

    /// <summary>
    /// PUT /api/v1/sensortypes/{ref}: StackStorm's <c>st2 sensor enable|disable</c>. As there, only
    /// <c>enabled</c> may change (the rest of a sensor type the client sends back is ignored); the choice is kept
    /// until changed again, whatever the sensor's YAML says.
    /// </summary>
    public async Task<ApiResponse> UpdateSensorAsync(string sensorRef, JsonNode? body, CancellationToken cancellationToken)
    {
        if (body is not JsonObject request || !IsBool(request["enabled"]))
        {
            return ApiResponse.Fault(400, "the body must be a JSON object with \"enabled\" (true or false)");
        }

        if (await sensors.SetEnabledAsync(sensorRef, request["enabled"]!.GetValue<bool>(), cancellationToken) is null)
        {
            return ApiResponse.Fault(404, $"sensor '{sensorRef}' is not in the loaded packs");
        }

        return await GetSensorAsync(sensorRef, cancellationToken);
    }

    /// <summary>GET /api/v1/sensortypes/{ref}: one sensor, as listed (StackStorm's client reads it before a PUT).</summary>
    public async Task<ApiResponse> GetSensorAsync(string sensorRef, CancellationToken cancellationToken) =>
        (await sensors.StatusesAsync(cancellationToken)).Where(s => s.Sensor.Ref == sensorRef).Select(s => SensorView(s.Sensor, s.Runner, s.Record)).FirstOrDefault() is { } view
            ? new ApiResponse(200, view)
            : ApiResponse.Fault(404, $"sensor '{sensorRef}' is not in the loaded packs");

    /// <summary>The sensor type's resource, for RBAC (<c>sensor_type:pack:Class</c>, covered by a grant on its pack).</summary>
    public static Security.Rbac.ResourceRef SensorResource(string sensorRef)
    {
        var dot = sensorRef.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? new($"sensor_type:{sensorRef}") : new($"sensor_type:{sensorRef[..dot]}:{sensorRef[(dot + 1)..]}", sensorRef[..dot]);
    }

    private static JsonObject SensorView(Sensors.SensorDefinition sensor, string? runner, Sensors.SensorRecord record) =>
            new()
            {
                // StackStorm's client addresses a sensor type by its id; here the ref is its id.
                ["id"] = sensor.Ref,
                ["ref"] = sensor.Ref,
                ["uid"] = $"sensor_type:{sensor.Pack}:{sensor.ClassName}",
                ["pack"] = sensor.Pack,
                ["name"] = sensor.ClassName,
                ["class_name"] = sensor.ClassName,
                ["entry_point"] = sensor.EntryPoint,
                ["enabled"] = Sensors.SensorScheduler.IsEnabled(sensor, record),
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
            };

    private static string? Time(DateTimeOffset? time) => time?.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture);
}
