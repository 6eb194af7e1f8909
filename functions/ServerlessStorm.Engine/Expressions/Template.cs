using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Json;

namespace ServerlessStorm.Engine.Expressions;

/// <summary>The variables a template can read (<c>trigger</c>, later <c>st2kv</c>, parameters, workflow context).</summary>
public sealed class TemplateScope
{
    private readonly Dictionary<string, JsonNode?> _variables = new(StringComparer.Ordinal);

    public TemplateScope Set(string name, JsonNode? value)
    {
        _variables[name] = value;
        return this;
    }

    public bool TryGet(string name, out JsonNode? value) => _variables.TryGetValue(name, out value);

    public static TemplateScope ForTrigger(JsonNode? payload) => new TemplateScope().Set("trigger", payload);
}

public abstract record TemplateSegment;

public sealed record TextSegment(string Text) : TemplateSegment;

/// <summary>A <c>{{ … }}</c> expression; <see cref="Offset"/> is where it starts in the template source.</summary>
public sealed record ExpressionSegment(PayloadPath Path, int Offset) : TemplateSegment;

/// <summary>
/// A parsed template in Jinja syntax. Only the template's own text is ever parsed: values substituted into it are
/// data and are never parsed again, so a payload holding <c>{{ 7*7 }}</c> stays that string.
/// </summary>
public sealed class Template
{
    private Template(string source, IReadOnlyList<TemplateSegment> segments)
    {
        Source = source;
        Segments = segments;
    }

    public string Source { get; }

    public IReadOnlyList<TemplateSegment> Segments { get; }

    /// <summary>True when the whole template is one expression, whose value keeps its JSON type when rendered.</summary>
    public bool IsSingleExpression => Segments is [ExpressionSegment];

    public static bool LooksLikeTemplate(string text) =>
        text.Contains("{{", StringComparison.Ordinal) || text.Contains("{%", StringComparison.Ordinal);

    public static Template Parse(string source)
    {
        var segments = new List<TemplateSegment>();
        var text = new StringBuilder();
        var position = 0;
        while (position < source.Length)
        {
            if (Starts(source, position, "{%"))
            {
                throw new TemplateSyntaxException("'{% … %}' statements are not supported here", position);
            }

            if (!Starts(source, position, "{{"))
            {
                text.Append(source[position++]);
                continue;
            }

            if (text.Length > 0)
            {
                segments.Add(new TextSegment(text.ToString()));
                text.Clear();
            }

            var start = position;
            position += 2;
            var path = PayloadPath.ParseAt(source, ref position);
            PayloadPath.SkipSpaces(source, ref position);
            if (!Starts(source, position, "}}"))
            {
                throw position >= source.Length
                    ? new TemplateSyntaxException("'{{' is never closed with '}}'", start)
                    : new TemplateSyntaxException($"unexpected '{source[position]}' in expression; expected '}}}}'", position);
            }

            position += 2;
            segments.Add(new ExpressionSegment(path, start));
        }

        if (text.Length > 0)
        {
            segments.Add(new TextSegment(text.ToString()));
        }

        return new Template(source, segments);
    }

    /// <summary>Renders to a value: a single expression keeps its type, anything else becomes a string.</summary>
    public JsonNode? Evaluate(TemplateScope scope) =>
        IsSingleExpression ? Resolve((ExpressionSegment)Segments[0], scope, out _)?.DeepClone() : JsonValue.Create(Render(scope));

    public string Render(TemplateScope scope)
    {
        var builder = new StringBuilder();
        foreach (var segment in Segments)
        {
            builder.Append(segment switch
            {
                TextSegment t => t.Text,
                ExpressionSegment e => ToText(Resolve(e, scope, out var found), found),
                _ => "",
            });
        }

        return builder.ToString();
    }

    public static JsonNode? Resolve(ExpressionSegment expression, TemplateScope scope, out bool found)
    {
        if (!scope.TryGet(expression.Path.Root, out var root))
        {
            found = false;
            return null;
        }

        return expression.Path.Resolve(root, out found);
    }

    /// <summary>Text of a value as Jinja prints it: an undefined value is empty, null is None, booleans are True/False.</summary>
    public static string ToText(JsonNode? value, bool found = true)
    {
        if (!found)
        {
            return "";
        }

        return value switch
        {
            null => "None",
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            JsonValue v when v.GetValueKind() == JsonValueKind.True => "True",
            JsonValue v when v.GetValueKind() == JsonValueKind.False => "False",
            JsonValue v when JsonNumbers.TryGetDouble(v, out var d) && !JsonNumbers.TryGetInt64(v, out _) =>
                d.ToString("R", CultureInfo.InvariantCulture),
            _ => value.ToJsonString(),
        };
    }

    private static bool Starts(string text, int position, string token) =>
        string.CompareOrdinal(text, position, token, 0, token.Length) == 0;
}
