using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Audit;

/// <summary>Masks the values of secret parameters wherever they would be kept or shown.</summary>
public static class SecretMasker
{
    public const string Mask = "********";

    /// <summary>The secret parameter values of <paramref name="parameters"/>, as text (what would leak into output).</summary>
    public static IReadOnlyList<string> SecretValues(ActionDefinition action, JsonObject parameters) =>
        [.. action.Parameters.Values
            .Where(p => p.Secret && parameters[p.Name] is not null)
            .Select(p => parameters[p.Name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : parameters[p.Name]!.ToJsonString())
            .Where(s => s.Length > 0)];

    public static JsonObject MaskParameters(ActionDefinition action, JsonObject parameters)
    {
        var masked = (JsonObject)parameters.DeepClone();
        foreach (var definition in action.Parameters.Values.Where(p => p.Secret && masked.ContainsKey(p.Name)))
        {
            masked[definition.Name] = Mask;
        }

        var secrets = SecretValues(action, parameters);
        return secrets.Count == 0 ? masked : (JsonObject)MaskValues(masked, secrets)!;
    }

    /// <summary>Replaces every occurrence of a secret inside the strings of <paramref name="node"/> (results that echo them).</summary>
    public static JsonNode? MaskValues(JsonNode? node, IReadOnlyList<string> secrets)
    {
        if (secrets.Count == 0)
        {
            return node;
        }

        return node switch
        {
            JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, MaskValues(p.Value, secrets)))),
            JsonArray array => new JsonArray([.. array.Select(i => MaskValues(i, secrets))]),
            JsonValue v when v.TryGetValue<string>(out var s) => JsonValue.Create(MaskText(s, secrets)),
            _ => node?.DeepClone(),
        };
    }

    public static string MaskText(string text, IReadOnlyList<string> secrets)
    {
        foreach (var secret in secrets)
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }

        return text;
    }
}
