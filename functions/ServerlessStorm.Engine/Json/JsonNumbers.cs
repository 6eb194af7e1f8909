using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Json;

/// <summary>
/// Reads numbers from JSON nodes whatever .NET type backs them: a <see cref="JsonValue"/> made from an int does not
/// answer TryGetValue&lt;long&gt;, so numbers are read from their JSON text.
/// </summary>
public static class JsonNumbers
{
    public static bool TryGetInt64(JsonNode? node, out long value)
    {
        value = 0;
        return node is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && long.TryParse(v.ToJsonString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }

    public static bool TryGetDouble(JsonNode? node, out double value)
    {
        value = 0;
        return node is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && double.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }
}
