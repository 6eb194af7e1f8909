using System.Text.Json.Nodes;
using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Sensors;

namespace ServerlessStorm.Azure.Sensors;

/// <summary>
/// The sensors' status and kept state in Table Storage, shared by every host: <c>{prefix}Sensors</c>, PartitionKey
/// <c>sensor</c>, RowKey = the sensor's ref. A write is an insert (none stored yet) or a replace under the ETag read,
/// so two instances can never both claim a sensor.
/// </summary>
public sealed class TableSensorStore : ISensorStore
{
    private const string Partition = "sensor";
    private readonly TableClient _table;
    private readonly Lazy<Task> _created;

    public TableSensorStore(IOptions<AzureStorageOptions> options)
    {
        _table = new StorageClients(options.Value).Tables.GetTableClient(options.Value.Names.SensorsTable);
        _created = new(() => _table.CreateIfNotExistsAsync());
    }

    public async Task<SensorRecord?> GetAsync(string sensorRef, CancellationToken cancellationToken)
    {
        await _created.Value;
        var response = await _table.GetEntityIfExistsAsync<TableEntity>(Partition, sensorRef, cancellationToken: cancellationToken);
        return response.HasValue ? FromEntity(response.Value!) : null;
    }

    public async Task<IReadOnlyList<SensorRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await _created.Value;
        var records = new List<SensorRecord>();
        await foreach (var entity in _table.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey eq {Partition}"), cancellationToken: cancellationToken))
        {
            records.Add(FromEntity(entity));
        }

        return records;
    }

    public async Task<SensorRecord?> TryWriteAsync(SensorRecord record, CancellationToken cancellationToken)
    {
        await _created.Value;
        var entity = new TableEntity(Partition, record.Ref)
        {
            ["Status"] = record.Status,
            ["LastPoll"] = record.LastPoll,
            ["NextPoll"] = record.NextPoll,
            ["LastError"] = record.LastError,
            ["LastErrorAt"] = record.LastErrorAt,
            ["ConsecutiveFailures"] = record.ConsecutiveFailures,
            ["Polls"] = record.Polls,
            ["LongRunning"] = record.LongRunning,
            ["LongRunningCode"] = record.LongRunningCode,
            ["NextTick"] = record.NextTick,
            ["Enabled"] = record.Enabled,
            ["State"] = record.State.ToJsonString(),
            ["Holder"] = record.Holder,
            ["LeaseUntil"] = record.LeaseUntil,
        };
        try
        {
            var response = record.Version is { } version
                ? await _table.UpdateEntityAsync(entity, new ETag(version), TableUpdateMode.Replace, cancellationToken)
                : await _table.AddEntityAsync(entity, cancellationToken);
            return record with { Version = response.Headers.ETag?.ToString() };
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412 or 404)
        {
            return null;
        }
    }

    private static SensorRecord FromEntity(TableEntity entity) => new(entity.RowKey)
    {
        Status = entity.GetString("Status") ?? SensorStates.Pending,
        LastPoll = entity.GetDateTimeOffset("LastPoll"),
        NextPoll = entity.GetDateTimeOffset("NextPoll"),
        LastError = entity.GetString("LastError"),
        LastErrorAt = entity.GetDateTimeOffset("LastErrorAt"),
        ConsecutiveFailures = entity.GetInt32("ConsecutiveFailures") ?? 0,
        Polls = entity.GetInt64("Polls") ?? 0,
        LongRunning = entity.GetBoolean("LongRunning") ?? false,
        LongRunningCode = entity.GetString("LongRunningCode"),
        NextTick = entity.GetString("NextTick"),
        Enabled = entity.GetBoolean("Enabled"),
        State = entity.GetString("State") is { Length: > 0 } state && JsonNode.Parse(state) is JsonObject kept ? kept : [],
        Holder = entity.GetString("Holder"),
        LeaseUntil = entity.GetDateTimeOffset("LeaseUntil"),
        Version = entity.ETag.ToString(),
    };
}
