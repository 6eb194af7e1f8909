using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Json;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Packs;

/// <summary>One way a pack's config breaks its schema: where (the value's position), which key (dotted path) and what.</summary>
public sealed record PackConfigProblem(SourcePosition Position, string Key, string Message);

/// <summary>
/// A pack's <c>config.schema.yaml</c>: a mapping of top-level config keys to their JSON schemas, with StackStorm's
/// additions (<c>required: true</c> and <c>secret: true</c> on a property). A config is checked against it as
/// StackStorm checks one when it registers it: keys the schema does not name are allowed at the top level, defaults
/// count as given, and nested objects and arrays follow their <c>properties</c>, <c>additionalProperties</c> and
/// <c>items</c>. A templated string (<c>{{ st2kv.system.x }}</c>) is checked only for its template's syntax: its value
/// exists only when the config is used.
/// </summary>
public sealed class PackConfigSchema
{
    // Leaf keywords JsonSchema already checks on one scalar.
    private static readonly string[] LeafKeywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern"];

    public PackConfigSchema(JsonObject properties)
    {
        Properties = properties;
    }

    /// <summary>Each top-level key's schema.</summary>
    public JsonObject Properties { get; }

    /// <summary>The schema as one JSON schema of an object (top-level keys besides these allowed, as StackStorm allows them).</summary>
    public JsonObject AsObjectSchema() => new() { ["type"] = "object", ["properties"] = Properties.DeepClone() };

    /// <summary>Every way <paramref name="config"/> breaks the schema, each at the offending value.</summary>
    public IReadOnlyList<PackConfigProblem> Validate(YamlMapping config)
    {
        var problems = new List<PackConfigProblem>();
        CheckMapping(config, AsObjectSchema(), "", problems, topLevel: true, secret: false);
        return problems;
    }

    /// <summary>The keys that are required, have no default and are not in a config (StackStorm's error when one is registered without them).</summary>
    public IEnumerable<string> RequiredWithoutDefault() =>
        Properties.Where(p => p.Value is JsonObject s && IsTrue(s["required"]) && !s.ContainsKey("default")).Select(p => p.Key);

    /// <summary>
    /// <paramref name="config"/> with the schema's defaults for what it lacks, nested objects and arrays included
    /// (an object with defaults for its properties is created when absent), as StackStorm fills them.
    /// </summary>
    public JsonObject WithDefaults(JsonObject config)
    {
        var filled = (JsonObject)config.DeepClone();
        FillObject(filled, AsObjectSchema());
        return filled;
    }

    /// <summary>Calls <paramref name="visit"/> for each value of <paramref name="config"/> with the schema that applies to it (empty when none), replacing the value with what it returns.</summary>
    public JsonObject Map(JsonObject config, Func<JsonNode? /*value*/, JsonObject /*schema*/, string /*path*/, JsonNode?> visit) =>
        (JsonObject)MapNode(config, AsObjectSchema(), "", visit)!;

    public static bool IsSecret(JsonObject schema) => IsTrue(schema["secret"]);

    private static JsonNode? MapNode(JsonNode? node, JsonObject schema, string path, Func<JsonNode?, JsonObject, string, JsonNode?> visit)
    {
        switch (node)
        {
            case JsonObject obj when !IsSecret(schema):
                var copy = new JsonObject();
                foreach (var (key, child) in obj)
                {
                    copy[key] = MapNode(child, PropertySchema(schema, key) ?? [], Join(path, key), visit);
                }

                return copy;
            case JsonArray array when !IsSecret(schema):
                var items = new JsonArray();
                for (var i = 0; i < array.Count; i++)
                {
                    items.Add(MapNode(array[i], ItemSchema(schema, i) ?? [], $"{path}[{i}]", visit));
                }

                return items;
            default:
                // What the visitor hands back may be the config's own node: it is copied, never moved.
                var mapped = visit(node, schema, path);
                return mapped?.Parent is null ? mapped : mapped.DeepClone();
        }
    }

    /// <summary>Problems with the schema file itself: each key's schema must be a mapping of known keywords' shapes.</summary>
    public static (PackConfigSchema Schema, IReadOnlyList<PackConfigProblem> Problems) Read(YamlMapping document)
    {
        var problems = new List<PackConfigProblem>();
        var properties = new JsonObject();
        foreach (var (key, value) in document.Entries)
        {
            if (value is not YamlMapping mapping)
            {
                problems.Add(new PackConfigProblem(value.Position, key.Value, $"expected the schema of config key '{key.Value}' (a mapping), got a {value.KindName}"));
                continue;
            }

            var schema = (JsonObject)mapping.ToJson()!;
            foreach (var problem in JsonSchema.CheckSchema(schema))
            {
                problems.Add(new PackConfigProblem(mapping.Position, key.Value, problem));
            }

            properties[key.Value] = schema;
        }

        return (new PackConfigSchema(properties), problems);
    }

    // secret: an enclosing object or array is secret, so this value is part of a secret whatever its own schema says.
    private static void Check(YamlNode node, JsonObject schema, string path, List<PackConfigProblem> problems, bool secret)
    {
        secret = secret || IsSecret(schema);
        if (node is YamlScalar scalar && scalar.ToJson() is JsonValue text && text.GetValueKind() == JsonValueKind.String
            && Template.LooksLikeTemplate(scalar.Value))
        {
            CheckTemplate(scalar, schema, path, problems, secret);
            return;
        }

        var json = node.ToJson();
        var types = Types(schema).ToList();
        if (types.Count > 0 && !types.Any(t => IsType(json, t)))
        {
            problems.Add(new PackConfigProblem(node.Position, path, $"expected {string.Join(" or ", types)}, got {TypeOf(json)}{(node is YamlScalar s && !secret ? $" ({Show(s)})" : "")}"));
            return;
        }

        if (schema["enum"] is JsonArray allowed && !allowed.Any(a => JsonNode.DeepEquals(a, json)))
        {
            problems.Add(new PackConfigProblem(node.Position, path, $"{(node is YamlScalar s && !secret ? Show(s) : "the value")} is not one of {allowed.ToJsonString()}"));
            return;
        }

        switch (node)
        {
            case YamlMapping mapping:
                CheckMapping(mapping, schema, path, problems, topLevel: false, secret);
                break;
            case YamlSequence sequence:
                for (var i = 0; i < sequence.Items.Count; i++)
                {
                    if (ItemSchema(schema, i) is { } itemSchema)
                    {
                        Check(sequence.Items[i], itemSchema, $"{path}[{i}]", problems, secret);
                    }
                }

                break;
            default:
                var leaf = new JsonObject();
                foreach (var keyword in LeafKeywords.Where(schema.ContainsKey))
                {
                    leaf[keyword] = schema[keyword]!.DeepClone();
                }

                foreach (var message in leaf.Count > 0 ? JsonSchema.Validate(json, leaf) : [])
                {
                    // A secret's value is never repeated in a message that is printed and logged.
                    problems.Add(new PackConfigProblem(node.Position, path, secret ? $"does not meet the schema's {string.Join(", ", leaf.Select(k => k.Key))}" : message));
                }

                break;
        }
    }

    private static void CheckMapping(YamlMapping mapping, JsonObject schema, string path, List<PackConfigProblem> problems, bool topLevel, bool secret)
    {
        var properties = schema["properties"] as JsonObject ?? [];
        var requiredList = schema["required"] is JsonArray list ? list.Select(n => n?.ToString()).ToHashSet(StringComparer.Ordinal) : [];
        foreach (var (name, property) in properties)
        {
            var required = requiredList.Contains(name) || (property is JsonObject p && IsTrue(p["required"]));
            if (required && mapping[name] is null && (property as JsonObject)?.ContainsKey("default") != true)
            {
                problems.Add(new PackConfigProblem(mapping.Position, Join(path, name), "is required and has no value (and the schema gives no default)"));
            }
        }

        foreach (var (key, value) in mapping.Entries)
        {
            var childPath = Join(path, key.Value);
            if (PropertySchema(schema, key.Value) is { } childSchema)
            {
                Check(value, childSchema, childPath, problems, secret);
            }
            else if (!topLevel && schema["additionalProperties"] is JsonValue extra && extra.GetValueKind() == JsonValueKind.False)
            {
                problems.Add(new PackConfigProblem(key.Position, childPath, $"is not allowed here (known: {string.Join(", ", properties.Select(p => p.Key))})"));
            }
        }
    }

    // A template's syntax is checked now; a secret key's value is decrypted by StackStorm already, so decrypt_kv on it is StackStorm's error.
    private static void CheckTemplate(YamlScalar scalar, JsonObject schema, string path, List<PackConfigProblem> problems, bool secret)
    {
        try
        {
            Template.Parse(scalar.Value);
        }
        catch (TemplateSyntaxException ex)
        {
            // The parser's message may quote the template: not for a secret's.
            problems.Add(new PackConfigProblem(scalar.Position, path, secret ? $"template error at character {ex.Offset + 1}" : $"template error at character {ex.Offset + 1}: {ex.Message}"));
            return;
        }

        if (IsSecret(schema) && scalar.Value.Contains("decrypt_kv", StringComparison.Ordinal))
        {
            problems.Add(new PackConfigProblem(scalar.Position, path,
                "is 'secret: true' in the schema, so its datastore value is decrypted already: use it without decrypt_kv"));
        }
    }

    private static void FillObject(JsonObject config, JsonObject schema)
    {
        foreach (var (name, property) in schema["properties"] as JsonObject ?? [])
        {
            if (property is not JsonObject child)
            {
                continue;
            }

            if (!config.ContainsKey(name) && child.TryGetPropertyValue("default", out var value))
            {
                config[name] = value?.DeepClone();
            }

            FillNested(config, name, child);
        }
    }

    private static void FillNested(JsonObject parent, string name, JsonObject schema)
    {
        var type = schema["type"]?.ToString();
        if (type == "object" && schema["properties"] is JsonObject { Count: > 0 })
        {
            if (parent[name] is null)
            {
                parent[name] = new JsonObject();
            }

            if (parent[name] is JsonObject nested)
            {
                FillObject(nested, schema);
            }
        }
        else if (type == "array" && schema["items"] is JsonObject items && parent[name] is JsonArray array)
        {
            foreach (var item in array.OfType<JsonObject>())
            {
                FillObject(item, items);
            }
        }
    }

    // properties first, then patternProperties, then an additionalProperties schema, as StackStorm resolves a key's schema.
    private static JsonObject? PropertySchema(JsonObject schema, string key)
    {
        if (schema["properties"] is JsonObject properties && properties[key] is JsonObject found)
        {
            return found;
        }

        if (schema["patternProperties"] is JsonObject patterns)
        {
            foreach (var (pattern, patternSchema) in patterns)
            {
                if (patternSchema is JsonObject ps && IsMatch(pattern, key))
                {
                    return ps;
                }
            }
        }

        return schema["additionalProperties"] as JsonObject;
    }

    private static JsonObject? ItemSchema(JsonObject schema, int index) => schema["items"] switch
    {
        JsonObject one => one,
        JsonArray positional => index < positional.Count ? positional[index] as JsonObject : schema["additionalItems"] as JsonObject,
        _ => null,
    };

    private static bool IsMatch(string pattern, string key)
    {
        try
        {
            return Regex.IsMatch(key, pattern, RegexOptions.None, TimeSpan.FromMilliseconds(100));
        }
        catch (Exception ex) when (ex is ArgumentException or RegexMatchTimeoutException)
        {
            return false;
        }
    }

    private static bool IsTrue(JsonNode? node) => node is JsonValue v && v.GetValueKind() == JsonValueKind.True;

    private static IEnumerable<string> Types(JsonObject schema) => Json.JsonSchema.Types(schema);

    // A type name JSON Schema does not have constrains nothing here.
    private static bool IsType(JsonNode? value, string type) =>
        type is not ("null" or "object" or "array" or "string" or "boolean" or "number" or "integer") || Json.JsonSchema.IsType(value, type);

    private static string TypeOf(JsonNode? value) => value switch
    {
        null => "null",
        JsonObject => "a mapping",
        JsonArray => "a list",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            JsonValueKind.Number => "a number",
            _ => "a value",
        },
        _ => "a value",
    };

    // A scalar as written, but never a secret's value: the problem is printed and logged.
    private static string Show(YamlScalar scalar) => scalar.Value.Length <= 40 && !scalar.Value.Contains('\n') ? $"'{scalar.Value}'" : "the value";

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";
}
