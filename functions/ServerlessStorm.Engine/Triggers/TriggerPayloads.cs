using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Triggers;

/// <summary>
/// The one check a trigger sent from outside the engine passes (the generic webhook's body, a sensor's dispatch), as
/// StackStorm validates a trigger payload before dispatching it: the type exists, is not one of the platform's own,
/// and the payload is an object that matches the type's payload_schema.
/// </summary>
public static class TriggerPayloads
{
    /// <summary>The payload to dispatch (a copy; none given is an empty object), or why it is refused.</summary>
    public static (JsonObject? Payload, string? Error) Check(PackCatalog catalog, string type, JsonNode? payload)
    {
        if (!catalog.TriggerTypes.TryGetValue(type, out var triggerType))
        {
            return (null, $"trigger type '{type}' does not exist");
        }

        // The system's own triggers (webhooks, timers, execution and inquiry events) come only from the system: sent
        // from outside they would fire other hooks' rules past their permissions and signatures, or forge "execution failed".
        if (triggerType.Pack == "core" && type.StartsWith("core.st2.", StringComparison.Ordinal))
        {
            return (null, $"trigger type '{type}' is the platform's own and cannot be sent; send a pack's trigger type");
        }

        var copy = payload switch
        {
            null => new JsonObject(),
            JsonObject given => (JsonObject)given.DeepClone(),
            _ => null,
        };
        if (copy is null)
        {
            return (null, "\"payload\" must be an object");
        }

        if (triggerType.PayloadSchema is { } schema && Json.JsonSchema.Validate(copy, schema) is { Count: > 0 } problems)
        {
            return (null, $"the payload does not match trigger type '{type}''s payload_schema: {string.Join("; ", problems)}");
        }

        return (copy, null);
    }
}
