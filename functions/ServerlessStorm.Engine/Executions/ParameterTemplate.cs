using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Executions;

/// <summary>
/// A parameter value that holds templates: one templated string (<see cref="Whole"/>), or an object or array with
/// templated strings (or keys) anywhere inside, rendered as StackStorm's param.py renders them: an item that is
/// exactly <c>{{name}}</c> keeps its value's type; any other templated string becomes the rendered text.
/// </summary>
internal sealed partial class ParameterTemplate
{
    private readonly string _parameter;
    private readonly JsonNode? _complex;
    private readonly Dictionary<string, Template> _parts;

    private ParameterTemplate(string parameter, Template? whole, JsonNode? complex, Dictionary<string, Template> parts)
    {
        _parameter = parameter;
        Whole = whole;
        _complex = complex;
        _parts = parts;
        ReferencedNames = Templates.SelectMany(t => t.ReferencedNames).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>The template when the whole value is one templated string.</summary>
    public Template? Whole { get; }

    public IEnumerable<Template> Templates => Whole is not null ? [Whole] : _parts.Values;

    public IReadOnlySet<string> ReferencedNames { get; }

    /// <summary>
    /// The value's templates, or null when it has none. A syntax error is added to <paramref name="problems"/>
    /// with the place it is in (<c>'env' at env.KV</c>), or skipped when that is null.
    /// </summary>
    public static ParameterTemplate? Compile(string parameter, JsonNode? value, List<string>? problems)
    {
        if (value is JsonValue v && v.TryGetValue<string>(out var text))
        {
            return Template.LooksLikeTemplate(text) && TryParse(parameter, parameter, text, problems) is { } whole
                ? new ParameterTemplate(parameter, whole, null, [])
                : null;
        }

        if (value is not (JsonObject or JsonArray))
        {
            return null;
        }

        var parts = new Dictionary<string, Template>(StringComparer.Ordinal);
        var failed = false;
        void Visit(JsonNode? node, string path)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (key, child) in obj)
                    {
                        var at = $"{path}.{key}";
                        Add(key, at);
                        Visit(child, at);
                    }

                    break;
                case JsonArray array:
                    for (var i = 0; i < array.Count; i++)
                    {
                        Visit(array[i], $"{path}[{i}]");
                    }

                    break;
                case JsonValue item when item.TryGetValue<string>(out var s):
                    Add(s, path);
                    break;
            }
        }

        void Add(string s, string path)
        {
            if (!parts.ContainsKey(s) && Template.LooksLikeTemplate(s))
            {
                if (TryParse(parameter, path, s, problems) is { } template)
                {
                    parts[s] = template;
                }
                else
                {
                    failed = true;
                }
            }
        }

        Visit(value, parameter);
        return parts.Count == 0 || failed ? null : new ParameterTemplate(parameter, null, value, parts);
    }

    /// <summary>The rendered value; an error names the place inside the value that failed.</summary>
    public JsonNode? Render(TemplateScope scope)
    {
        if (Whole is not null)
        {
            return Whole.Evaluate(scope);
        }

        return Render(_complex, _parameter, scope);
    }

    private JsonNode? Render(JsonNode? node, string path, TemplateScope scope)
    {
        switch (node)
        {
            case JsonObject obj:
                var result = new JsonObject();
                foreach (var (key, child) in obj)
                {
                    var at = $"{path}.{key}";
                    var renderedKey = _parts.TryGetValue(key, out var keyTemplate) ? Guard(at, () => keyTemplate.Render(scope)) : key;
                    result[renderedKey] = Render(child, at, scope);
                }

                return result;
            case JsonArray array:
                return new JsonArray([.. array.Select((item, i) => Render(item, $"{path}[{i}]", scope))]);
            case JsonValue v when v.TryGetValue<string>(out var text) && _parts.TryGetValue(text, out var template):
                // "{{name}}" alone keeps the type of the value (param.py's to_complex); anything else is text.
                return Guard(path, () => TypedReference().IsMatch(text) ? template.Evaluate(scope) : JsonValue.Create(template.Render(scope)));
            default:
                return node?.DeepClone();
        }
    }

    private static T Guard<T>(string path, Func<T> render)
    {
        try
        {
            return render();
        }
        catch (ExpressionEvaluationException ex)
        {
            throw new ExpressionEvaluationException($"at {path}: {ex.Message}", ex.Offset, ex);
        }
    }

    private static Template? TryParse(string parameter, string path, string text, List<string>? problems)
    {
        try
        {
            return Template.Parse(text);
        }
        catch (TemplateSyntaxException ex)
        {
            problems?.Add(path == parameter
                ? $"'{parameter}' is not a valid template at character {ex.Offset + 1}: {ex.Message}"
                : $"'{parameter}' is not a valid template at {path}, character {ex.Offset + 1}: {ex.Message}");
            return null;
        }
    }

    [GeneratedRegex(@"^\{\{[A-Za-z0-9_-]+\}\}$")]
    private static partial Regex TypedReference();
}
