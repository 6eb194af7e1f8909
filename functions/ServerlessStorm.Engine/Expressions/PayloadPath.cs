using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Expressions;

/// <summary>An error in template or path syntax, with the 0-based offset where it was found.</summary>
public sealed class TemplateSyntaxException(string message, int offset) : Exception(message)
{
    public int Offset { get; } = offset;
}

/// <summary>
/// A path into data as StackStorm writes it: <c>trigger.body.name</c>, <c>trigger.items[0]</c>,
/// <c>trigger.headers['X-GitHub-Event']</c> (brackets for keys that are not identifiers, dots allowed inside).
/// </summary>
public sealed class PayloadPath
{
    private PayloadPath(string source, string root, IReadOnlyList<object> steps)
    {
        Source = source;
        Root = root;
        Steps = steps;
    }

    public string Source { get; }

    /// <summary>The first name (<c>trigger</c>, <c>item</c>, a parameter name).</summary>
    public string Root { get; }

    /// <summary>Each step is a <see cref="string"/> key or an <see cref="int"/> index.</summary>
    public IReadOnlyList<object> Steps { get; }

    public static PayloadPath Parse(string source)
    {
        var position = 0;
        var path = ParseAt(source, ref position);
        SkipSpaces(source, ref position);
        if (position != source.Length)
        {
            throw new TemplateSyntaxException($"unexpected '{source[position]}' in path '{source}'", position);
        }

        return path;
    }

    /// <summary>Parses a path that starts at <paramref name="position"/> and stops at the first character that cannot continue it.</summary>
    internal static PayloadPath ParseAt(string text, ref int position)
    {
        SkipSpaces(text, ref position);
        var start = position;
        var root = ReadIdentifier(text, ref position)
            ?? throw new TemplateSyntaxException("expected a name", position);
        var steps = new List<object>();
        while (position < text.Length)
        {
            if (text[position] == '.')
            {
                position++;
                var name = ReadIdentifier(text, ref position)
                    ?? throw new TemplateSyntaxException("expected a name after '.'", position);
                steps.Add(name);
            }
            else if (text[position] == '[')
            {
                position++;
                SkipSpaces(text, ref position);
                steps.Add(ReadBracketKey(text, ref position));
                SkipSpaces(text, ref position);
                if (position >= text.Length || text[position] != ']')
                {
                    throw new TemplateSyntaxException("expected ']'", position);
                }

                position++;
            }
            else
            {
                break;
            }
        }

        return new PayloadPath(text[start..position].Trim(), root, steps);
    }

    /// <summary>The value at this path below <paramref name="root"/>; <paramref name="found"/> is false for a missing key.</summary>
    public JsonNode? Resolve(JsonNode? root, out bool found)
    {
        var current = root;
        foreach (var step in Steps)
        {
            switch (step, current)
            {
                case (string key, JsonObject obj) when obj.TryGetPropertyValue(key, out var child):
                    current = child;
                    break;
                case (int index, JsonArray array) when index >= -array.Count && index < array.Count:
                    current = array[index < 0 ? array.Count + index : index];
                    break;
                default:
                    found = false;
                    return null;
            }
        }

        found = true;
        return current;
    }

    /// <summary>The value at this path below <paramref name="root"/> in the expression model; null when missing (as StackStorm's lookup).</summary>
    public object? Resolve(object? root)
    {
        var current = root;
        foreach (var step in Steps)
        {
            switch (step, current)
            {
                case (string key, OrderedDictionary<string, object?> dict) when dict.TryGetValue(key, out var child):
                    current = child;
                    break;
                case (int index, List<object?> list) when index >= -list.Count && index < list.Count:
                    current = list[index < 0 ? list.Count + index : index];
                    break;
                default:
                    return null;
            }
        }

        return current;
    }

    public override string ToString() => Source;

    private static object ReadBracketKey(string text, ref int position)
    {
        if (position < text.Length && text[position] is '\'' or '"')
        {
            return ReadQuoted(text, ref position);
        }

        var start = position;
        if (position < text.Length && text[position] == '-')
        {
            position++;
        }

        while (position < text.Length && char.IsAsciiDigit(text[position]))
        {
            position++;
        }

        if (position == start || !int.TryParse(text.AsSpan(start, position - start), NumberStyles.AllowLeadingSign,
                CultureInfo.InvariantCulture, out var index))
        {
            throw new TemplateSyntaxException("expected a quoted key or an integer index inside '[ ]'", start);
        }

        return index;
    }

    internal static string ReadQuoted(string text, ref int position)
    {
        var quote = text[position];
        var start = position;
        position++;
        var builder = new StringBuilder();
        while (position < text.Length && text[position] != quote)
        {
            if (text[position] == '\\' && position + 1 < text.Length)
            {
                position++;
                builder.Append(text[position] switch { 'n' => '\n', 't' => '\t', 'r' => '\r', var c => c });
            }
            else
            {
                builder.Append(text[position]);
            }

            position++;
        }

        if (position >= text.Length)
        {
            throw new TemplateSyntaxException("unterminated string", start);
        }

        position++;
        return builder.ToString();
    }

    internal static string? ReadIdentifier(string text, ref int position)
    {
        var start = position;
        if (position >= text.Length || !(char.IsLetter(text[position]) || text[position] == '_'))
        {
            return null;
        }

        while (position < text.Length && (char.IsLetterOrDigit(text[position]) || text[position] == '_'))
        {
            position++;
        }

        return text[start..position];
    }

    internal static void SkipSpaces(string text, ref int position)
    {
        while (position < text.Length && char.IsWhiteSpace(text[position]))
        {
            position++;
        }
    }
}
