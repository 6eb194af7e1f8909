using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessStorm.Engine.Json;

/// <summary>
/// The part of JSON Schema that StackStorm content uses (inquiry answers, action output schemas): type, enum,
/// const, properties, required (a list, or StackStorm's draft-3 style <c>required: true</c> inside a property),
/// additionalProperties, items, min/max items, length and value, pattern, anyOf/allOf/oneOf. Other keywords are
/// ignored, as a validator ignores keywords it does not know.
/// </summary>
public static class JsonSchema
{
    private static readonly string[] TypeNames = ["string", "integer", "number", "boolean", "object", "array", "null"];

    /// <summary>Every way <paramref name="value"/> breaks <paramref name="schema"/>, each as <c>path: message</c>; empty when it fits.</summary>
    public static IReadOnlyList<string> Validate(JsonNode? value, JsonObject schema)
    {
        var problems = new List<string>();
        Check(value, schema, "", problems);
        return problems;
    }

    /// <summary>Problems with a schema itself (unknown type names, keywords of the wrong shape), for load-time checks.</summary>
    public static IReadOnlyList<string> CheckSchema(JsonObject schema, string path = "")
    {
        var problems = new List<string>();
        foreach (var type in Types(schema))
        {
            if (!TypeNames.Contains(type))
            {
                problems.Add($"{Where(path)}type '{type}' is not one of {string.Join(", ", TypeNames)}");
            }
        }

        if (schema["properties"] is { } properties)
        {
            if (properties is not JsonObject map)
            {
                problems.Add($"{Where(path)}properties must be a mapping");
            }
            else
            {
                foreach (var (name, child) in map)
                {
                    if (child is JsonObject childSchema)
                    {
                        problems.AddRange(CheckSchema(childSchema, Join(path, name)));
                    }
                    else
                    {
                        problems.Add($"{Where(Join(path, name))}a property's schema must be a mapping");
                    }
                }
            }
        }

        if (schema["items"] is JsonObject items)
        {
            problems.AddRange(CheckSchema(items, path + "[]"));
        }

        if (schema["pattern"] is JsonValue p && p.TryGetValue<string>(out var pattern) && !IsRegex(pattern))
        {
            problems.Add($"{Where(path)}pattern '{pattern}' is not a valid regular expression");
        }

        return problems;
    }

    private static void Check(JsonNode? value, JsonObject schema, string path, List<string> problems)
    {
        var types = Types(schema).ToList();
        if (types.Count > 0 && !types.Any(t => IsType(value, t)))
        {
            problems.Add($"{Where(path)}expected {string.Join(" or ", types)}, got {TypeOf(value)}");
            return;
        }

        if (schema["enum"] is JsonArray allowed && !allowed.Any(a => JsonNode.DeepEquals(a, value)))
        {
            problems.Add($"{Where(path)}{Show(value)} is not one of {allowed.ToJsonString()}");
        }

        if (schema.TryGetPropertyValue("const", out var constant) && !JsonNode.DeepEquals(constant, value))
        {
            problems.Add($"{Where(path)}must be {constant?.ToJsonString() ?? "null"}");
        }

        switch (value)
        {
            case JsonObject obj:
                CheckObject(obj, schema, path, problems);
                break;
            case JsonArray array:
                CheckArray(array, schema, path, problems);
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                CheckString(v.GetValue<string>(), schema, path, problems);
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.Number && JsonNumbers.TryGetDouble(v, out var number):
                CheckNumber(number, schema, path, problems);
                break;
        }

        foreach (var (keyword, needed) in new[] { ("allOf", -1), ("anyOf", 0), ("oneOf", 1) })
        {
            if (schema[keyword] is not JsonArray options)
            {
                continue;
            }

            var results = options.OfType<JsonObject>().Select(o =>
            {
                var found = new List<string>();
                Check(value, o, path, found);
                return found;
            }).ToList();
            var fitting = results.Count(r => r.Count == 0);
            if (needed == -1 && fitting < results.Count)
            {
                problems.AddRange(results.SelectMany(r => r));
            }
            else if (needed == 0 && fitting == 0)
            {
                problems.Add($"{Where(path)}matches none of the anyOf schemas ({string.Join("; ", results.Select(r => r[0]))})");
            }
            else if (needed == 1 && fitting != 1)
            {
                problems.Add($"{Where(path)}matches {fitting} of the oneOf schemas, not exactly one");
            }
        }
    }

    private static void CheckObject(JsonObject obj, JsonObject schema, string path, List<string> problems)
    {
        var properties = schema["properties"] as JsonObject ?? [];
        var required = (schema["required"] as JsonArray)?.Select(r => r?.GetValue<string>()).OfType<string>().ToHashSet() ?? [];
        foreach (var (name, child) in properties)
        {
            if (child is JsonObject childSchema && childSchema["required"] is JsonValue r && r.TryGetValue<bool>(out var isRequired) && isRequired)
            {
                required.Add(name);
            }
        }

        foreach (var name in required.Where(n => !obj.ContainsKey(n)).Order(StringComparer.Ordinal))
        {
            problems.Add($"{Where(Join(path, name))}is required");
        }

        foreach (var (name, child) in obj)
        {
            if (properties[name] is JsonObject childSchema)
            {
                Check(child, childSchema, Join(path, name), problems);
            }
            else if (schema["additionalProperties"] is JsonValue extra && extra.TryGetValue<bool>(out var allowed) && !allowed)
            {
                problems.Add($"{Where(Join(path, name))}is not an allowed property (allowed: {string.Join(", ", properties.Select(p => p.Key))})");
            }
            else if (schema["additionalProperties"] is JsonObject extraSchema)
            {
                Check(child, extraSchema, Join(path, name), problems);
            }
        }
    }

    private static void CheckArray(JsonArray array, JsonObject schema, string path, List<string> problems)
    {
        if (Number(schema, "minItems") is { } min && array.Count < min)
        {
            problems.Add($"{Where(path)}has {array.Count} item(s), fewer than {min}");
        }

        if (Number(schema, "maxItems") is { } max && array.Count > max)
        {
            problems.Add($"{Where(path)}has {array.Count} item(s), more than {max}");
        }

        if (schema["items"] is JsonObject items)
        {
            for (var i = 0; i < array.Count; i++)
            {
                Check(array[i], items, $"{path}[{i}]", problems);
            }
        }

        if (schema["uniqueItems"] is JsonValue u && u.TryGetValue<bool>(out var unique) && unique &&
            array.Select((item, i) => array.Take(i).Any(earlier => JsonNode.DeepEquals(earlier, item))).Any(duplicate => duplicate))
        {
            problems.Add($"{Where(path)}has duplicate items");
        }
    }

    private static void CheckString(string text, JsonObject schema, string path, List<string> problems)
    {
        var length = new StringInfo(text).LengthInTextElements;
        if (Number(schema, "minLength") is { } min && length < min)
        {
            problems.Add($"{Where(path)}is shorter than {min} character(s)");
        }

        if (Number(schema, "maxLength") is { } max && length > max)
        {
            problems.Add($"{Where(path)}is longer than {max} character(s)");
        }

        if (schema["pattern"] is JsonValue p && p.TryGetValue<string>(out var pattern) && IsRegex(pattern))
        {
            try
            {
                if (!Regex.IsMatch(text, pattern, RegexOptions.None, TimeSpan.FromMilliseconds(100)))
                {
                    problems.Add($"{Where(path)}does not match the pattern {pattern}");
                }
            }
            catch (RegexMatchTimeoutException)
            {
                // A pattern that backtracks without end on this value: the value is refused, and nothing crashes.
                problems.Add($"{Where(path)}could not be matched against the pattern {pattern} within 100 ms");
            }
        }
    }

    private static void CheckNumber(double number, JsonObject schema, string path, List<string> problems)
    {
        var exclusiveMinimum = schema["exclusiveMinimum"] is JsonValue emin && emin.TryGetValue<bool>(out var eminFlag) && eminFlag;
        var exclusiveMaximum = schema["exclusiveMaximum"] is JsonValue emax && emax.TryGetValue<bool>(out var emaxFlag) && emaxFlag;
        if (Number(schema, "minimum") is { } min && (number < min || exclusiveMinimum && number == min))
        {
            problems.Add($"{Where(path)}{Show(number)} is less than {(exclusiveMinimum ? "or equal to " : "")}the minimum {Show(min)}");
        }

        if (Number(schema, "maximum") is { } max && (number > max || exclusiveMaximum && number == max))
        {
            problems.Add($"{Where(path)}{Show(number)} is more than {(exclusiveMaximum ? "or equal to " : "")}the maximum {Show(max)}");
        }

        // Draft 6 and later: the exclusive bounds are numbers of their own.
        if (Number(schema, "exclusiveMinimum") is { } lower && number <= lower)
        {
            problems.Add($"{Where(path)}{Show(number)} is not more than {Show(lower)}");
        }

        if (Number(schema, "exclusiveMaximum") is { } upper && number >= upper)
        {
            problems.Add($"{Where(path)}{Show(number)} is not less than {Show(upper)}");
        }
    }

    /// <summary>The schema's <c>type</c>: one name or a list of them.</summary>
    internal static IEnumerable<string> Types(JsonObject schema) => schema["type"] switch
    {
        JsonValue v when v.TryGetValue<string>(out var one) => [one],
        JsonArray many => many.Select(t => t is JsonValue tv && tv.TryGetValue<string>(out var s) ? s : "?"),
        _ => [],
    };

    /// <summary>Whether the value is of the JSON Schema type named; false for a name JSON Schema does not have.</summary>
    internal static bool IsType(JsonNode? value, string type) => type switch
    {
        "null" => value is null,
        "object" => value is JsonObject,
        "array" => value is JsonArray,
        "string" => value is JsonValue v && v.GetValueKind() == JsonValueKind.String,
        "boolean" => value is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False,
        "number" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number,
        "integer" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && JsonNumbers.TryGetDouble(v, out var d) && Math.Floor(d) == d,
        _ => false,
    };

    private static string TypeOf(JsonNode? value) => value switch
    {
        null => "null",
        JsonObject => "object",
        JsonArray => "array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "string",
            JsonValueKind.True or JsonValueKind.False => "boolean",
            JsonValueKind.Number => IsType(v, "integer") ? "integer" : "number",
            _ => "null",
        },
        _ => "value",
    };

    private static double? Number(JsonObject schema, string keyword) =>
        schema[keyword] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && JsonNumbers.TryGetDouble(v, out var d) ? d : null;

    private static bool IsRegex(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromMilliseconds(100));
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static string Show(JsonNode? value) => value?.ToJsonString() ?? "null";

    private static string Show(double number) => number.ToString(CultureInfo.InvariantCulture);

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private static string Where(string path) => path.Length == 0 ? "" : path + ": ";
}
