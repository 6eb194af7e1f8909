using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Expressions;

/// <summary>
/// A JSON value from a pack file whose strings may be templates. The templates are parsed once, when the pack loads;
/// rendering walks the value and replaces each templated string with its rendered value.
/// </summary>
public sealed class TemplatedValue
{
    private readonly JsonNode? _value;
    private readonly Dictionary<string, Template> _templates;

    private TemplatedValue(JsonNode? value, Dictionary<string, Template> templates)
    {
        _value = value;
        _templates = templates;
    }

    public JsonNode? Raw => _value;

    /// <summary>Every template inside the value.</summary>
    public IEnumerable<Template> Templates => _templates.Values;

    /// <summary>The template when the value is one templated string, else null.</summary>
    public Template? AsTemplate => _value is JsonValue v && v.TryGetValue<string>(out var s) && _templates.TryGetValue(s, out var t) ? t : null;

    /// <summary>Parses every templated string in <paramref name="value"/>; reports each syntax error with its JSON path.</summary>
    public static TemplatedValue Compile(JsonNode? value, Action<string, TemplateSyntaxException>? onError = null, TemplateDialect dialect = TemplateDialect.Jinja)
    {
        var templates = new Dictionary<string, Template>(StringComparer.Ordinal);
        Visit(value, "");
        return new TemplatedValue(value, templates);

        void Visit(JsonNode? node, string path)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (key, child) in obj)
                    {
                        Visit(child, path.Length == 0 ? key : $"{path}.{key}");
                    }

                    break;
                case JsonArray array:
                    for (var i = 0; i < array.Count; i++)
                    {
                        Visit(array[i], $"{path}[{i}]");
                    }

                    break;
                case JsonValue v when v.TryGetValue<string>(out var s) && Template.LooksLikeTemplate(s, dialect) && !templates.ContainsKey(s):
                    try
                    {
                        templates[s] = Template.Parse(s, dialect);
                    }
                    catch (TemplateSyntaxException ex) when (onError is not null)
                    {
                        onError(path, ex);
                    }

                    break;
            }
        }
    }

    public JsonNode? Render(TemplateScope scope) => Render(_value, scope);

    private JsonNode? Render(JsonNode? node, TemplateScope scope) => node switch
    {
        JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, Render(p.Value, scope)))),
        JsonArray array => new JsonArray([.. array.Select(i => Render(i, scope))]),
        JsonValue v when v.TryGetValue<string>(out var s) && _templates.TryGetValue(s, out var template) => template.Evaluate(scope),
        _ => node?.DeepClone(),
    };
}
