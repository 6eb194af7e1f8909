using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>
/// Regexes written in Python's syntax (StackStorm's), compiled once for .NET. A pattern that the non-backtracking
/// engine supports runs on it, so no input can make it stall; the rest (backreferences, lookarounds) run with a
/// match timeout.
/// </summary>
public static partial class PythonRegex
{
    /// <summary>How long a pattern the non-backtracking engine cannot run may take on one input.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromMilliseconds(100);

    private static readonly ConcurrentDictionary<(string, RegexOptions), Regex> Cache = new();

    /// <summary>Compiles <paramref name="pattern"/>; throws <see cref="ArgumentException"/> with the reason when it is invalid.</summary>
    public static Regex Get(string pattern, RegexOptions options = RegexOptions.None)
    {
        if (Cache.Count > 10_000)
        {
            Cache.Clear();
        }

        return Cache.GetOrAdd((pattern, options), key =>
        {
            var translated = ToDotNet(key.Item1);
            try
            {
                return new Regex(translated, key.Item2 | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking, MatchTimeout);
            }
            catch (NotSupportedException)
            {
                return new Regex(translated, key.Item2 | RegexOptions.CultureInvariant, MatchTimeout);
            }
        });
    }

    public static string ToDotNet(string pattern)
    {
        var s = pattern
            .Replace("(?P<", "(?<", StringComparison.Ordinal)
            .Replace(@"\Z", @"\z", StringComparison.Ordinal);
        s = NamedBackreference().Replace(s, @"\k<$1>");
        return OpenLowerBound().Replace(s, "{0,$1}");
    }

    /// <summary>Python's replacement syntax (<c>\1</c>, <c>\g&lt;name&gt;</c>) in .NET's (<c>$1</c>, <c>${name}</c>).</summary>
    public static string Replacement(string replacement)
    {
        var builder = new System.Text.StringBuilder();
        for (var i = 0; i < replacement.Length; i++)
        {
            var c = replacement[i];
            if (c == '$')
            {
                builder.Append("$$");
            }
            else if (c == '\\' && i + 1 < replacement.Length)
            {
                var next = replacement[i + 1];
                if (char.IsAsciiDigit(next))
                {
                    builder.Append("${").Append(next).Append('}');
                    i++;
                }
                else if (next == 'g' && i + 2 < replacement.Length && replacement[i + 2] == '<' && replacement.IndexOf('>', i + 3) is var close and > 0)
                {
                    builder.Append("${").Append(replacement, i + 3, close - i - 3).Append('}');
                    i = close;
                }
                else
                {
                    builder.Append(next switch { 'n' => "\n", 't' => "\t", 'r' => "\r", '\\' => "\\", _ => "\\" + next });
                    i++;
                }
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    [GeneratedRegex(@"\(\?P=(\w+)\)")]
    private static partial Regex NamedBackreference();

    [GeneratedRegex(@"(?<!\\)\{,(\d+)\}")]
    private static partial Regex OpenLowerBound();
}
