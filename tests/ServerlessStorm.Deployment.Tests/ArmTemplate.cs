using System.Text.Json.Nodes;

namespace ServerlessStorm.Deployment.Tests;

/// <summary>A resource of the compiled template, with the parameter values its module was given.</summary>
public sealed record ArmResource(JsonObject Json, JsonObject ModuleParameters, JsonObject ModuleVariables)
{
    public string Type => Json["type"]!.GetValue<string>();

    public JsonObject Properties => Json["properties"]!.AsObject();

    /// <summary>A module parameter's value as main.bicep passes it (a literal, or an ARM expression as text).</summary>
    public JsonNode? Parameter(string name) => ModuleParameters[name]?["value"];
}

/// <summary>Walks main.bicep's compiled ARM JSON: every resource, in every module (nested deployment).</summary>
public static class ArmTemplate
{
    public static IEnumerable<ArmResource> Resources(JsonObject template) => Resources(template, new JsonObject());

    private static IEnumerable<ArmResource> Resources(JsonObject template, JsonObject parameters)
    {
        var variables = template["variables"] as JsonObject ?? new JsonObject();
        var resources = template["resources"] switch
        {
            JsonArray array => array.Select(r => r!.AsObject()),
            JsonObject named => named.Select(p => p.Value!.AsObject()),
            _ => [],
        };
        foreach (var resource in resources)
        {
            if (resource["existing"]?.GetValue<bool>() == true)
            {
                continue;
            }

            yield return new ArmResource(resource, parameters, variables);
            if (resource["type"]!.GetValue<string>() == "Microsoft.Resources/deployments")
            {
                var nested = resource["properties"]!["template"]!.AsObject();
                var given = resource["properties"]!["parameters"] as JsonObject ?? new JsonObject();
                foreach (var inner in Resources(nested, given))
                {
                    yield return inner;
                }
            }
        }
    }

    public static ArmResource Single(JsonObject template, string type) => Resources(template).Single(r => r.Type == type);

    /// <summary>Every string anywhere in the template (property values, expressions, names).</summary>
    public static IEnumerable<string> Strings(JsonNode? node) => node switch
    {
        JsonObject o => o.SelectMany(p => Strings(p.Value).Prepend(p.Key)),
        JsonArray a => a.SelectMany(Strings),
        JsonValue v when v.TryGetValue<string>(out var s) => [s],
        _ => [],
    };
}
