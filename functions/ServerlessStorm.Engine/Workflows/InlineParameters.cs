using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessStorm.Engine.Workflows;

/// <summary>A <c>key=value</c> pair of an inline form; <see cref="Value"/> is JSON, its strings possibly templates.</summary>
public sealed record InlineParameter(string Name, JsonNode? Value);

/// <summary>
/// Orquesta's inline forms: <c>key=value</c> pairs written after an action ref (<c>action: core.echo message="hi"</c>)
/// or as a <c>publish</c> string (<c>publish: a=&lt;% result() %&gt;</c>). The values Orquesta reads, tried in its order:
/// a <c>[…]</c> list (to the last <c>]</c>), a "double-" or 'single-quoted' string, a decimal number, an integer,
/// true/false (any case), null, a YAQL <c>&lt;% … %&gt;</c> or a Jinja <c>{{ … }}</c> expression. Unquoted values are read
/// as JSON when they are JSON; quoted ones stay text, except a quoted <c>{…}</c>, which is read as a JSON object.
/// Pairs are delimited by spaces, commas or semicolons. Orquesta drops text that fits none of these without a word;
/// here it is reported (the second list <see cref="Parse"/> returns).
/// </summary>
public static partial class InlineParameters
{
    /// <summary>The pairs in order, and each stretch of text that is not one (trimmed, non-empty).</summary>
    public static (IReadOnlyList<InlineParameter> Parameters, IReadOnlyList<string> Unread) Parse(string text)
    {
        var parameters = new List<InlineParameter>();
        var unread = new List<string>();
        var at = 0;
        foreach (Match match in Pair().Matches(text))
        {
            Skipped(text[at..match.Index]);
            parameters.Add(new InlineParameter(match.Groups["key"].Value, Value(match.Groups["value"].Value)));
            at = match.Index + match.Length;
        }

        Skipped(text[at..]);
        return (parameters, unread);

        // Pairs are delimited by spaces, commas or semicolons (Orquesta's docs).
        void Skipped(string between)
        {
            var rest = between.Trim().Trim(',', ';').Trim();
            if (between.Any(c => !char.IsWhiteSpace(c) && c is not (',' or ';')))
            {
                unread.Add(rest);
            }
        }
    }

    /// <summary>Whether <paramref name="text"/> holds at least one <c>key=value</c> pair Orquesta would read.</summary>
    public static bool HasAny(string text) => Pair().IsMatch(text);

    // The value as Orquesta's parameter reader turns it into data.
    private static JsonNode? Value(string raw)
    {
        var value = raw.Trim();
        var quoted = Quoted().IsMatch(value);
        value = value.StartsWith('"') ? value[1..] : value;
        value = value.EndsWith('"') ? value[..^1] : value;
        value = value.StartsWith('\'') ? value[1..] : value;
        value = value.EndsWith('\'') ? value[..^1] : value;

        // Quoted text stays text, unless it is a JSON object in quotes.
        var text = quoted && !(value.Length > 0 && value[0] == '{' && value[^1] == '}');
        if (!text)
        {
            if (value.Equals("true", StringComparison.OrdinalIgnoreCase) || value.Equals("false", StringComparison.OrdinalIgnoreCase))
            {
                value = value.ToLowerInvariant();
            }

            try
            {
                return JsonNode.Parse(value);
            }
            catch (JsonException)
            {
                // Not JSON (an expression, a list of bare words): kept as text.
            }
        }

        return JsonValue.Create(value);
    }

    // key=value, the value's forms in Orquesta's order (a decimal before an integer, so 1.5 is not read as 1).
    [GeneratedRegex("""(?<key>\w+)=(?<value>\[.*\]\s*|"[^"]*"\s*|'[^']*'\s*|-?\d*\.\d+|-?\d+|(?i:true)|(?i:false)|null|<%.*?%>|\{\{.*?\}\})""")]
    private static partial Regex Pair();

    [GeneratedRegex("""("[^"]*"|'[^']*')""")]
    private static partial Regex Quoted();
}
