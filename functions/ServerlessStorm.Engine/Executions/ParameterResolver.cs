using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Json;

namespace ServerlessStorm.Engine.Executions;

/// <summary>Parameters were wrong; <see cref="Problems"/> names each one.</summary>
public sealed class ParameterValidationException(string actionRef, IReadOnlyList<string> problems)
    : Exception($"invalid parameters for {actionRef}: {string.Join("; ", problems)}")
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>
/// Turns what a rule or a caller supplied into the parameters an action runs with: templates rendered, defaults
/// applied, values cast to their declared types, and every problem (unknown, missing, immutable, wrong type, not in
/// enum) reported together before anything runs.
/// </summary>
public static class ParameterResolver
{
    /// <summary>Resolves a rule's templated parameters against the trigger payload.</summary>
    public static JsonObject FromTemplates(
        ActionDefinition action,
        IReadOnlyDictionary<string, TemplatedValue> supplied,
        TemplateScope scope,
        string? shellCommandParameter)
    {
        var values = new JsonObject();
        foreach (var (name, value) in supplied)
        {
            values[name] = value.Render(scope);
        }

        if (shellCommandParameter is not null && supplied.TryGetValue(shellCommandParameter, out var cmd) && cmd.AsTemplate is { } template)
        {
            values[shellCommandParameter] = ShellCommandTemplate.RenderInto(template, scope, values);
        }

        return Resolve(action, values);
    }

    /// <summary>Resolves literal parameters (from the API or <c>storm run</c>); they are taken as given, not rendered.</summary>
    public static JsonObject Resolve(ActionDefinition action, JsonObject supplied)
    {
        var problems = new List<string>();
        var result = new JsonObject();
        foreach (var (name, value) in supplied)
        {
            if (!action.Parameters.TryGetValue(name, out var definition))
            {
                problems.Add($"'{name}' is not a parameter of {action.Ref} (it has: {string.Join(", ", action.Parameters.Keys)})");
                continue;
            }

            if (definition.Immutable)
            {
                problems.Add($"'{name}' is immutable and cannot be set");
                continue;
            }

            result[name] = Cast(definition, value?.DeepClone(), problems);
        }

        foreach (var definition in action.Parameters.Values)
        {
            if (result.ContainsKey(definition.Name))
            {
                continue;
            }

            if (definition.Default is not null)
            {
                result[definition.Name] = definition.Default.DeepClone();
            }
            else if (definition.Required)
            {
                problems.Add($"'{definition.Name}' is required");
            }
        }

        if (problems.Count > 0)
        {
            throw new ParameterValidationException(action.Ref, problems);
        }

        return result;
    }

    private static JsonNode? Cast(ParameterDefinition definition, JsonNode? value, List<string> problems)
    {
        if (value is null)
        {
            return null;
        }

        var types = definition.Type.Split('|');
        var cast = types.Contains(TypeOf(value)) ? value : types.Select(t => CastTo(t, value)).FirstOrDefault(v => v is not null);
        if (cast is null)
        {
            problems.Add($"'{definition.Name}' must be {string.Join(" or ", types.Select(Article))}, got {Describe(value)}");
            return null;
        }

        if (definition.Enum is { Count: > 0 } allowed && !allowed.Any(a => JsonNode.DeepEquals(a, cast)))
        {
            problems.Add($"'{definition.Name}' must be one of {allowed.ToJsonString()}, got {cast.ToJsonString()}");
        }

        return cast;
    }

    private static string TypeOf(JsonNode value) => value.GetValueKind() switch
    {
        JsonValueKind.String => "string",
        JsonValueKind.Number when JsonNumbers.TryGetInt64(value, out _) => "integer",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Array => "array",
        JsonValueKind.Object => "object",
        _ => "null",
    };

    private static JsonNode? CastTo(string type, JsonNode value)
    {
        var kind = value.GetValueKind();
        var text = kind == JsonValueKind.String ? value.GetValue<string>() : null;
        return type switch
        {
            "string" when kind is not (JsonValueKind.Object or JsonValueKind.Array) => JsonValue.Create(Py.Str(Py.FromJson(value))),
            "integer" when text is not null && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
            "number" when text is not null && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
            "boolean" when text is not null && bool.TryParse(text, out var b) => b,
            "array" or "object" when text is not null && TryParseJson(text) is { } parsed && parsed.GetValueKind() == (type == "array" ? JsonValueKind.Array : JsonValueKind.Object) => parsed,
            "number" when kind == JsonValueKind.Number => value,
            _ => null,
        };
    }

    private static JsonNode? TryParseJson(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Article(string type) => type is "integer" or "array" or "object" ? $"an {type}" : $"a {type}";

    private static string Describe(JsonNode value) => value.GetValueKind() switch
    {
        JsonValueKind.String => $"the string {value.ToJsonString()}",
        JsonValueKind.Number => $"the number {value.ToJsonString()}",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {value.ToJsonString()}",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => value.ToJsonString(),
    };
}
