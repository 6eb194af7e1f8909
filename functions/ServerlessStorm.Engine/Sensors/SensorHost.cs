using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Sensors;

/// <summary>
/// What one run of a sensor calls back: its dispatches, checked as the generic webhook checks them and handed to the
/// same <see cref="TriggerDispatcher"/> (the trigger instance's user is <c>sensor:REF</c>, its source); the datastore
/// under the sensor's local names; its log lines, to the host's log with the sensor's ref.
/// </summary>
public sealed class SensorHost(SensorRun run, PackCatalog catalog, TriggerDispatcher dispatcher, KeyValueService keys, TimeProvider time, ILogger logger,
    IReadOnlyList<string>? secrets = null) : ISensorHost
{
    private readonly IReadOnlyList<string> _secrets = secrets ?? [];

    private readonly PluginDatastore _datastore = new(keys, run.Sensor.Pack, run.Sensor.ClassName);
    private int _dispatched;

    /// <summary>The user a sensor's trigger instances are recorded with, naming the sensor as their source.</summary>
    public static string SourceOf(SensorDefinition sensor) => $"sensor:{sensor.Ref}";

    /// <summary>Why the last dispatch of this run was refused, when one was.</summary>
    public string? LastRefusal { get; private set; }

    public int Dispatched => _dispatched;

    public async Task DispatchAsync(string trigger, JsonNode? payload, string? traceTag, CancellationToken cancellationToken)
    {
        // A trigger the sensor was given (add_trigger) carries its rule's parameters; a type's ref has none.
        var given = run.Triggers.FirstOrDefault(t => t.Ref == trigger);
        var type = given?.Type ?? trigger;
        var (checkedPayload, error) = TriggerPayloads.Check(catalog, type, payload);
        if (error is not null)
        {
            // The check may quote the payload, which may hold a secret the sensor read.
            error = Mask(error);
            LastRefusal = $"dispatch of '{trigger}' refused: {error}";
            logger.SensorDispatchRefused(run.Sensor.Ref, trigger, error);
            throw new SensorDispatchException(error);
        }

        var now = time.GetUtcNow();
        var id = StormIds.New(now);
        var tag = traceTag is { Length: > 0 and <= 200 } ? traceTag : id;
        await dispatcher.DispatchAsync(new TriggerInstance(id, type, (JsonObject?)given?.Parameters.DeepClone() ?? [], checkedPayload, now, tag, SourceOf(run.Sensor)), cancellationToken);
        Interlocked.Increment(ref _dispatched);
        logger.SensorDispatched(run.Sensor.Ref, type, id, tag);
    }

    public Task<JsonNode?> DatastoreAsync(DatastoreCall call, CancellationToken cancellationToken) => _datastore.HandleAsync(call, cancellationToken);

    public void Log(string level, string message) => logger.SensorLine(run.Sensor.Ref, level, Mask(message)!);

    /// <summary>The text with the secrets this run knows of (its pack config's, the datastore's) masked.</summary>
    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(text))]
    public string? Mask(string? text) => text is null || _secrets.Count == 0 ? text : Audit.SecretMasker.MaskText(text, _secrets);
}
