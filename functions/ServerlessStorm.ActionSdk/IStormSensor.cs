using System.Text.Json.Nodes;

namespace ServerlessStorm.ActionSdk;

/// <summary>
/// A polling sensor written in C#, as StackStorm's <c>PollingSensor</c>: a public class with a parameterless
/// constructor in a pack's assembly, named by the sensor's <c>entry_point</c> (<c>path/To.dll:Namespace.ClassName</c>,
/// relative to the pack's <c>sensors/</c> folder). Every <c>poll_interval</c> the host creates an instance and calls
/// <see cref="SetupAsync"/>, <see cref="AddTriggerAsync"/> for each trigger a rule watches, <see cref="PollAsync"/> and
/// <see cref="CleanupAsync"/>: no process stays up between polls, so keep what the next poll needs in
/// <see cref="StormSensorContext.State"/> or the datastore, not in fields.
/// </summary>
public interface IStormPollingSensor
{
    Task SetupAsync(StormSensorContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Looks for events and dispatches them. Throwing records the poll as failed with the message; the next poll comes at the next interval.</summary>
    Task PollAsync(StormSensorContext context, CancellationToken cancellationToken);

    Task CleanupAsync(StormSensorContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>A rule watches <paramref name="trigger"/> (StackStorm's add_trigger); called before each poll for every such trigger.</summary>
    Task AddTriggerAsync(StormSensorTrigger trigger, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// A long-running sensor, as StackStorm's <c>Sensor</c>: <see cref="RunAsync"/> runs until the host stops it
/// (<paramref name="cancellationToken"/> in RunAsync). It runs only in <c>storm serve</c>, supervised and restarted
/// with a backoff when it ends or fails; the Function app does not run it (its status says why).
/// </summary>
public interface IStormSensor
{
    Task SetupAsync(StormSensorContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    Task RunAsync(StormSensorContext context, CancellationToken cancellationToken);

    Task CleanupAsync(StormSensorContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    Task AddTriggerAsync(StormSensorTrigger trigger, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>A trigger a rule watches: its ref, its type and the rule's trigger parameters.</summary>
public sealed record StormSensorTrigger(string Ref, string Type, JsonObject Parameters);

/// <summary>
/// What a sensor is given (StackStorm's <c>sensor_service</c>): dispatching triggers, the datastore with StackStorm's
/// local names (<c>pack.ClassName:name</c> unless <c>local: false</c>), the pack's config, a logger and its kept state.
/// </summary>
public abstract class StormSensorContext
{
    /// <summary>The sensor's ref, <c>pack.ClassName</c>.</summary>
    public abstract string SensorRef { get; }

    /// <summary>The pack's configuration, as JSON.</summary>
    public abstract JsonObject PackConfig { get; }

    /// <summary>The triggers rules watch on this sensor's trigger types.</summary>
    public abstract IReadOnlyList<StormSensorTrigger> Triggers { get; }

    /// <summary>What the last poll left here, kept for the next one (it must stay small: it is stored after every poll).</summary>
    public abstract JsonObject State { get; }

    /// <summary>Dispatches a trigger instance (<c>sensor_service.dispatch</c>); the payload is checked against the trigger type's payload_schema.</summary>
    /// <exception cref="InvalidOperationException">The trigger type does not exist or the payload does not match its schema: the message says why.</exception>
    public abstract Task DispatchAsync(string trigger, JsonNode? payload = null, string? traceTag = null, CancellationToken cancellationToken = default);

    public abstract Task<string?> GetValueAsync(string name, bool local = true, string scope = "system", bool decrypt = false, CancellationToken cancellationToken = default);

    /// <summary>Sets a value; <paramref name="ttl"/> in seconds.</summary>
    public abstract Task SetValueAsync(string name, string value, int? ttl = null, bool local = true, string scope = "system", bool encrypt = false, CancellationToken cancellationToken = default);

    /// <summary>The pairs whose names start with <paramref name="prefix"/> (the sensor's own when <paramref name="local"/>): full name to value.</summary>
    public abstract Task<IReadOnlyDictionary<string, string>> ListValuesAsync(bool local = true, string? prefix = null, string scope = "system", CancellationToken cancellationToken = default);

    /// <summary>Deletes a value; false when there was none.</summary>
    public abstract Task<bool> DeleteValueAsync(string name, bool local = true, string scope = "system", CancellationToken cancellationToken = default);

    /// <summary>A line for the host's log, tagged with the sensor's ref; <paramref name="level"/> is debug, info, warning or error.</summary>
    public abstract void Log(string level, string message);
}
