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

    /// <summary>
    /// The one resource of <paramref name="type"/> of the Function app deployed as azure.yaml's <paramref name="service"/>
    /// (functionapp.bicep is deployed once per app); of two conditional ones, the one its runtime deploys.
    /// </summary>
    public static ArmResource OfApp(JsonObject template, string type, string service) => Resources(template)
        .Where(r => r.Type == type && r.Parameter("serviceName")?.GetValue<string>() == service)
        .Single(r => r.Json["condition"]?.GetValue<string>() is not { } condition
            || condition.Contains($"'{Runtime(r)}'", StringComparison.Ordinal));

    /// <summary>The runtime the module of <paramref name="resource"/> was given (functionapp.bicep's default: .NET).</summary>
    public static string Runtime(ArmResource resource) => resource.Parameter("runtimeName")?.GetValue<string>() ?? "dotnet-isolated";

    /// <summary>Every string anywhere in the template (property values, expressions, names).</summary>
    public static IEnumerable<string> Strings(JsonNode? node) => node switch
    {
        JsonObject o => o.SelectMany(p => Strings(p.Value).Prepend(p.Key)),
        JsonArray a => a.SelectMany(Strings),
        JsonValue v when v.TryGetValue<string>(out var s) => [s],
        _ => [],
    };
}
