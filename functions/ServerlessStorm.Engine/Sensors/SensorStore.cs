using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Sensors;

/// <summary>The states a sensor's status shows.</summary>
public static class SensorStates
{
    /// <summary>Enabled, not polled yet.</summary>
    public const string Pending = "pending";

    /// <summary>Its last poll succeeded.</summary>
    public const string Running = "running";

    /// <summary>Its last poll (or its long-running run) failed: see the last error; it is tried again.</summary>
    public const string Failing = "failing";

    public const string Disabled = "disabled";

    /// <summary>No sensor runner of this host runs its code.</summary>
    public const string NoRunner = "no-runner";

    /// <summary>A long-running Sensor, supervised by <c>storm serve</c>.</summary>
    public const string LongRunning = "long-running";

    /// <summary>A long-running Sensor in a host that does not run them (the Function app): the last error says why.</summary>
    public const string NotRun = "not-run";
}

/// <summary>
/// What is kept of a sensor between polls and across restarts: its status, the state its last poll left, and who
/// holds it now (<see cref="Holder"/> until <see cref="LeaseUntil"/>), so only one host instance runs it at a time.
/// <see cref="Version"/> is the store's concurrency token (null for a record not stored yet).
/// </summary>
public sealed record SensorRecord(string Ref)
{
    public string Status { get; init; } = SensorStates.Pending;

    public DateTimeOffset? LastPoll { get; init; }

    public DateTimeOffset? NextPoll { get; init; }

    public string? LastError { get; init; }

    public DateTimeOffset? LastErrorAt { get; init; }

    public int ConsecutiveFailures { get; init; }

    public long Polls { get; init; }

    /// <summary>The class turned out to be a long-running Sensor: it is supervised, not polled.</summary>
    public bool LongRunning { get; init; }

    /// <summary>The code <see cref="LongRunning"/> was found in (<see cref="SensorFiles.Fingerprint"/>): changed code is looked at again.</summary>
    public string? LongRunningCode { get; init; }

    /// <summary>The operator's choice (<c>storm sensor enable|disable</c>); null: the sensor's YAML decides.</summary>
    public bool? Enabled { get; init; }

    /// <summary>Where polls are ticks on the timers queue: the id of the tick this sensor's chain expects next.</summary>
    public string? NextTick { get; init; }

    public JsonObject State { get; init; } = [];

    public string? Holder { get; init; }

    public DateTimeOffset? LeaseUntil { get; init; }

    public string? Version { get; init; }

    public bool HeldBySomeoneElse(string me, DateTimeOffset now) => Holder is not null && Holder != me && LeaseUntil > now;

    /// <summary>Held by a poll or run, this instance's or another's, whose hold has not lapsed.</summary>
    public bool IsHeld(DateTimeOffset now) => Holder is not null && LeaseUntil > now;
}

/// <summary>The sensors' status and state port (in memory, Table Storage).</summary>
public interface ISensorStore
{
    Task<SensorRecord?> GetAsync(string sensorRef, CancellationToken cancellationToken);

    Task<IReadOnlyList<SensorRecord>> ListAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Writes <paramref name="record"/> if the stored one is still the version it was read as (none stored when its
    /// <see cref="SensorRecord.Version"/> is null): the record as stored, with its new version; null when another
    /// writer got there first.
    /// </summary>
    Task<SensorRecord?> TryWriteAsync(SensorRecord record, CancellationToken cancellationToken);
}

/// <summary>The sensors' records in memory, for tests and hosts without storage.</summary>
public sealed class InMemorySensorStore : ISensorStore
{
    private readonly Dictionary<string, SensorRecord> _records = new(StringComparer.Ordinal);
    private long _version;

    public Task<SensorRecord?> GetAsync(string sensorRef, CancellationToken cancellationToken)
    {
        lock (_records)
        {
            return Task.FromResult(_records.GetValueOrDefault(sensorRef) is { } r ? r with { State = (JsonObject)r.State.DeepClone() } : null);
        }
    }

    public Task<IReadOnlyList<SensorRecord>> ListAsync(CancellationToken cancellationToken)
    {
        lock (_records)
        {
            return Task.FromResult<IReadOnlyList<SensorRecord>>([.. _records.Values.OrderBy(r => r.Ref, StringComparer.Ordinal)]);
        }
    }

    public Task<SensorRecord?> TryWriteAsync(SensorRecord record, CancellationToken cancellationToken)
    {
        lock (_records)
        {
            if (_records.GetValueOrDefault(record.Ref)?.Version != record.Version)
            {
                return Task.FromResult<SensorRecord?>(null);
            }

            var stored = record with { State = (JsonObject)record.State.DeepClone(), Version = (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture) };
            _records[record.Ref] = stored;
            return Task.FromResult<SensorRecord?>(stored with { State = (JsonObject)stored.State.DeepClone() });
        }
    }
}
