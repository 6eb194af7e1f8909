using System.Net.Mime;
using System.Text.Json;
using System.Text.Json.Nodes;
using CloudNative.CloudEvents;
using CloudNative.CloudEvents.SystemTextJson;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Messaging;

/// <summary>
/// Asks the action runners to run one execution; the audit already holds it as <c>requested</c>.
/// <see cref="Requested"/> is that record as it was written (with its version), so the runner can claim it without
/// reading it back; a runner that finds it stale reads the audit instead.
/// </summary>
public sealed record ExecutionRequest(string ExecutionId, string ActionRef, JsonObject Parameters, string TraceTag)
{
    public Executions.ExecutionRecord? Requested { get; init; }

    /// <summary>The trace the request belongs to (the sender's span), when it came over the bus with one.</summary>
    public Diagnostics.TraceContext? Trace { get; init; }

    /// <summary>When it was put on the bus (its event's time), when it came over the bus.</summary>
    public DateTimeOffset? SentAt { get; init; }
}

/// <summary>A message on the bus that is not what its queue carries.</summary>
public sealed class MalformedMessageException(string message, Exception? inner = null) : PoisonMessageException(message, inner);

/// <summary>
/// The bus's message format: CloudEvents 1.0 in structured JSON mode. A trigger instance's event has
/// type = the trigger type ref and id = the trigger-instance id.
/// </summary>
public static class StormEvents
{
    public const string ExecutionRequestedType = "serverlessstorm.execution.requested";

    public const string TimerTickType = "serverlessstorm.timer.tick";

    private static readonly Uri SensorSource = new("urn:serverlessstorm:sensors", UriKind.Absolute);
    private static readonly Uri TimersSource = new("urn:serverlessstorm:timers", UriKind.Absolute);
    private static readonly Uri RulesSource = new("urn:serverlessstorm:rules", UriKind.Absolute);
    private static readonly JsonEventFormatter Formatter = new();

    /// <summary>A timer's occurrence, under <paramref name="id"/> (its own, or a hop's on the way to a far one).</summary>
    public static BusMessage Encode(TimerTick tick, string id) =>
        Encode(id, TimerTickType, TimersSource, tick.At, new JsonObject { ["timer"] = tick.Timer, ["at"] = tick.At });

    public static TimerTick DecodeTimerTick(BusMessage message)
    {
        var (cloudEvent, data) = Decode(message);
        if (cloudEvent.Type != TimerTickType)
        {
            throw new MalformedMessageException($"expected a {TimerTickType} event, got '{cloudEvent.Type}'");
        }

        return new TimerTick(
            Text(data, "timer") ?? throw new MalformedMessageException("timer is missing"),
            data["at"] is JsonValue at && at.TryGetValue<DateTimeOffset>(out var due) ? due : throw new MalformedMessageException("at is missing"));
    }

    public const string SensorTickType = "serverlessstorm.sensor.tick";

    /// <summary>A sensor's due poll, under <paramref name="id"/> (the tick's own, or a hop's on the way to a far one).</summary>
    public static BusMessage Encode(Sensors.SensorTick tick, string id) =>
        Encode(id, SensorTickType, SensorSource, tick.At, new JsonObject { ["sensor"] = tick.Sensor, ["at"] = tick.At, ["tick"] = tick.Id });

    public static Sensors.SensorTick DecodeSensorTick(BusMessage message)
    {
        var (cloudEvent, data) = Decode(message);
        if (cloudEvent.Type != SensorTickType)
        {
            throw new MalformedMessageException($"expected a {SensorTickType} event, got '{cloudEvent.Type}'");
        }

        return new Sensors.SensorTick(
            Text(data, "sensor") ?? throw new MalformedMessageException("sensor is missing"),
            data["at"] is JsonValue at && at.TryGetValue<DateTimeOffset>(out var due) ? due : throw new MalformedMessageException("at is missing"),
            Text(data, "tick") ?? throw new MalformedMessageException("tick is missing"));
    }

    /// <summary>The CloudEvent type of a message (what a queue that carries more than one kind routes by).</summary>
    public static string TypeOf(BusMessage message) => Decode(message).Event.Type ?? "";

    public static BusMessage Encode(TriggerInstance instance)
    {
        var data = new JsonObject
        {
            ["trigger"] = instance.TriggerType,
            ["trigger_parameters"] = instance.TriggerParameters?.DeepClone(),
            ["payload"] = instance.Payload?.DeepClone(),
            ["trace_tag"] = instance.TraceTag,
        };
        return Encode(instance.Id, instance.TriggerType, SensorSource, instance.OccurredAt, data);
    }

    /// <param name="eventId">The CloudEvent (and message) id: the execution's id for its first request, so a request
    /// sent twice is one (a transport with duplicate detection stores it once); a fresh one for a request put back
    /// later, which is another event and must not be taken for a duplicate of the first.</param>
    public static BusMessage Encode(ExecutionRequest request, DateTimeOffset at, string? eventId = null)
    {
        var data = new JsonObject
        {
            ["execution_id"] = request.ExecutionId,
            ["action"] = request.ActionRef,
            ["parameters"] = request.Parameters.DeepClone(),
            ["trace_tag"] = request.TraceTag,
        };
        if (request.Requested is { } record)
        {
            data["record"] = new JsonObject
            {
                ["runner"] = record.RunnerType,
                ["parameters"] = record.Parameters.DeepClone(),
                ["trigger_instance_id"] = record.TriggerInstanceId,
                ["rule_ref"] = record.RuleRef,
                ["user"] = record.User,
                ["re_run_of"] = record.ReRunOf,
                ["re_run_tasks"] = record.ReRunTasks is null ? null : new JsonArray([.. record.ReRunTasks.Select(t => (JsonNode)t)]),
                ["parent"] = record.ParentId,
                ["workflow_task"] = record.WorkflowTask,
                ["retry_count"] = record.RetryCount,
                ["start_timestamp"] = record.StartTimestamp,
                ["version"] = record.Version,
            };
        }

        return Encode(eventId ?? request.ExecutionId, ExecutionRequestedType, RulesSource, at, data);
    }

    public static TriggerInstance DecodeTriggerInstance(BusMessage message)
    {
        var (cloudEvent, data) = Decode(message);
        return new TriggerInstance(
            cloudEvent.Id!,
            cloudEvent.Type!,
            data["trigger_parameters"] as JsonObject,
            data["payload"],
            cloudEvent.Time ?? DateTimeOffset.UnixEpoch,
            Text(data, "trace_tag") ?? cloudEvent.Id!) { Trace = TraceOf(cloudEvent) };
    }

    /// <summary>The trace context the sender put on <paramref name="cloudEvent"/>, if any.</summary>
    private static Diagnostics.TraceContext? TraceOf(CloudEvent cloudEvent) =>
        cloudEvent[TraceParentAttribute] is string parent ? new Diagnostics.TraceContext(parent, cloudEvent[TraceStateAttribute] as string) : null;

    public static ExecutionRequest DecodeExecutionRequest(BusMessage message)
    {
        var (cloudEvent, data) = Decode(message);
        if (cloudEvent.Type != ExecutionRequestedType)
        {
            throw new MalformedMessageException($"expected a {ExecutionRequestedType} event, got '{cloudEvent.Type}'");
        }

        var request = new ExecutionRequest(
            Text(data, "execution_id") ?? throw new MalformedMessageException("execution_id is missing"),
            Text(data, "action") ?? throw new MalformedMessageException("action is missing"),
            data["parameters"] as JsonObject ?? [],
            Text(data, "trace_tag") ?? cloudEvent.Id!) { Trace = TraceOf(cloudEvent), SentAt = cloudEvent.Time };
        return data["record"] is JsonObject r && Text(r, "runner") is { } runner && r["start_timestamp"] is JsonValue start && start.TryGetValue<DateTimeOffset>(out var started)
            ? request with { Requested = RequestedRecord(request, r, runner, started) }
            : request;
    }

    private static Executions.ExecutionRecord RequestedRecord(ExecutionRequest request, JsonObject r, string runner, DateTimeOffset started)
    {
        var record = new Executions.ExecutionRecord
        {
            Id = request.ExecutionId,
            ActionRef = request.ActionRef,
            RunnerType = runner,
            TraceTag = request.TraceTag,
            TriggerInstanceId = Text(r, "trigger_instance_id"),
            RuleRef = Text(r, "rule_ref"),
            User = Text(r, "user"),
            Parameters = (JsonObject?)r["parameters"]?.DeepClone() ?? [],
            SealedParameters = (JsonObject)request.Parameters.DeepClone(),
            ReRunOf = Text(r, "re_run_of"),
            ReRunTasks = r["re_run_tasks"] is JsonArray tasks ? [.. tasks.Select(t => t?.GetValue<string>()).OfType<string>()] : null,
            ParentId = Text(r, "parent"),
            WorkflowTask = Text(r, "workflow_task"),
            RetryCount = Json.JsonNumbers.TryGetInt64(r["retry_count"], out var retries) ? (int)retries : 0,
            Status = Executions.ExecutionStatus.Requested,
            StartTimestamp = started,
            Version = Text(r, "version"),
        };
        record.History.Add(new Executions.StatusChange(Executions.ExecutionStatus.Requested, started));
        return record;
    }

    // The CloudEvents distributed-tracing extension: the W3C trace context of the span that sent the event.
    private static readonly CloudEventAttribute TraceParentAttribute = CloudEventAttribute.CreateExtension("traceparent", CloudEventAttributeType.String);
    private static readonly CloudEventAttribute TraceStateAttribute = CloudEventAttribute.CreateExtension("tracestate", CloudEventAttributeType.String);
    private static readonly CloudEventAttribute[] Extensions = [TraceParentAttribute, TraceStateAttribute];

    private static BusMessage Encode(string id, string type, Uri source, DateTimeOffset time, JsonObject data)
    {
        var cloudEvent = new CloudEvent(CloudEventsSpecVersion.V1_0, Extensions)
        {
            Id = id,
            Type = type,
            Source = source,
            Time = time,
            DataContentType = MediaTypeNames.Application.Json,
            Data = JsonSerializer.SerializeToElement(data),
        };
        if (Diagnostics.StormTracing.Current() is { } trace)
        {
            cloudEvent[TraceParentAttribute] = trace.TraceParent;
            if (trace.TraceState is { Length: > 0 } state)
            {
                cloudEvent[TraceStateAttribute] = state;
            }
        }

        var body = Formatter.EncodeStructuredModeMessage(cloudEvent, out _);
        return new BusMessage(id, body);
    }

    private static (CloudEvent Event, JsonObject Data) Decode(BusMessage message)
    {
        CloudEvent cloudEvent;
        try
        {
            cloudEvent = Formatter.DecodeStructuredModeMessage(message.Body, new System.Net.Mime.ContentType("application/cloudevents+json"), Extensions);
        }
        catch (Exception ex) when (ex is ArgumentException or JsonException or InvalidOperationException)
        {
            throw new MalformedMessageException($"message {message.Id} is not a CloudEvents 1.0 JSON event: {ex.Message}", ex);
        }

        var data = cloudEvent.Data switch
        {
            JsonElement element when element.ValueKind == JsonValueKind.Object => JsonObject.Create(element)!,
            _ => throw new MalformedMessageException($"event {cloudEvent.Id} carries no JSON object as data"),
        };
        return (cloudEvent, data);
    }

    private static string? Text(JsonObject data, string name) =>
        data[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
