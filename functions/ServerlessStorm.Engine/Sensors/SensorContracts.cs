using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Sensors;

/// <summary>
/// A sensor a pack declares in <c>sensors/*.yaml</c>: its code (<c>entry_point</c>, a Python file in the pack's
/// <c>sensors/</c> folder or <c>path/To.dll:Namespace.Class</c> for C#), its class and how often it polls.
/// </summary>
public sealed record SensorDefinition(string Pack, string ClassName, string? EntryPoint, bool Enabled, TimeSpan PollInterval,
    IReadOnlyList<string> TriggerTypes, string SourceFile)
{
    /// <summary>
    /// The interval of a sensor whose YAML declares none, until it says otherwise: a Python sensor then polls on its
    /// class's own (StackStorm's <c>PollingSensor</c> defaults to 5 s), reported by each poll.
    /// </summary>
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromSeconds(60);

    /// <summary>The shortest interval between polls, whatever a sensor asks for: each poll is a fresh process.</summary>
    public static readonly TimeSpan MinimumPollInterval = TimeSpan.FromSeconds(1);

    /// <summary>The longest, as the YAML's poll_interval is bounded.</summary>
    public static readonly TimeSpan MaximumPollInterval = TimeSpan.FromDays(1);

    /// <summary>Whether the YAML declares <c>poll_interval</c> (a Python sensor's constructor gets it only then, as in StackStorm).</summary>
    public bool PollIntervalDeclared { get; init; }

    public string Ref => $"{Pack}.{ClassName}";
}

/// <summary>
/// One due poll of a sensor where polls are scheduled as delayed messages (the Function app): on the timers queue,
/// at <see cref="At"/>. <see cref="Id"/> names the sensor's chain of polls at that point: the sensor's record keeps
/// the id of the tick it expects next, and any other copy is dropped.
/// </summary>
public sealed record SensorTick(string Sensor, DateTimeOffset At, string Id)
{
    public static SensorTick For(string sensor, DateTimeOffset at) =>
        new(sensor, at, $"sensor-{sensor}-{at.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture)}");
}

/// <summary>A trigger a sensor watches for (a rule's trigger with parameters), as StackStorm passes it to add_trigger.</summary>
public sealed record SensorTrigger(string Ref, string Type, JsonObject Parameters);

/// <summary>One run of a sensor: its definition, pack, current triggers and the state it kept from its last run.</summary>
public sealed record SensorRun(SensorDefinition Sensor, PackDefinition Pack, IReadOnlyList<SensorTrigger> Triggers, JsonObject State);

/// <summary>How a poll ended: the state to keep for the next one, and the error when it failed.</summary>
public sealed record SensorPollOutcome(JsonObject State, string? Error = null)
{
    /// <summary>The interval the sensor asks for until its next poll (a Python sensor's get_poll_interval()); null: its YAML's.</summary>
    public TimeSpan? PollInterval { get; init; }

    /// <summary>The class is a long-running Sensor (run() forever), not a PollingSensor: it cannot be polled.</summary>
    public bool LongRunning { get; init; }
}

/// <summary>A dispatch the trigger type refuses (unknown type, payload against its payload_schema): the reason.</summary>
public sealed class SensorDispatchException(string message) : Exception(message);

/// <summary>What a running sensor calls back: dispatching triggers and the datastore.</summary>
public interface ISensorHost
{
    /// <summary>Dispatches a trigger instance; throws <see cref="SensorDispatchException"/> when it is refused.</summary>
    Task DispatchAsync(string trigger, JsonNode? payload, string? traceTag, CancellationToken cancellationToken);

    Task<JsonNode?> DatastoreAsync(DatastoreCall call, CancellationToken cancellationToken);

    /// <summary>A line the sensor logged (its logger, stdout, stderr), for the host's log; secrets masked by the host.</summary>
    void Log(string level, string message);
}

/// <summary>Runs sensors of one kind of code (Python, C#).</summary>
public interface ISensorRunner
{
    /// <summary>Whether this runner runs <paramref name="sensor"/>'s code.</summary>
    bool Runs(SensorDefinition sensor);

    /// <summary>One poll: setup, the triggers added, the kept state restored, poll, cleanup. Never throws for the sensor's own errors.</summary>
    Task<SensorPollOutcome> PollAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken);

    /// <summary>A long-running sensor: setup and run() until <paramref name="cancellationToken"/> fires or it ends; its error, if any.</summary>
    Task<string?> RunAsync(SensorRun run, ISensorHost host, CancellationToken cancellationToken);
}
