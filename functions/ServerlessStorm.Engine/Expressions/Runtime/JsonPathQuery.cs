using System.Globalization;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>A JSONPath query could not be read; the message says where.</summary>
public sealed class JsonPathSyntaxException(string message) : Exception(message);

/// <summary>
/// The JSONPath that StackStorm's <c>jsonpath_query</c> filter reads (python's jsonpath-rw): <c>$</c>, <c>@</c>,
/// fields (<c>a.b</c>, quoted <c>'a b'</c>, several <c>a,b</c>, <c>*</c>), <c>[n]</c> (negative from the end),
/// <c>[*]</c> and <c>[start:end]</c> (a non-list counts as a list of itself there), <c>['field']</c>, <c>..</c>
/// (descendants), <c>|</c> (union) and parentheses. Matches come in document order; values are in the <see cref="Py"/> model.
/// </summary>
public static class JsonPathQuery
{
    private abstract record Step;

    private sealed record Root : Step;

    private sealed record This : Step;

    private sealed record Fields(IReadOnlyList<string> Names) : Step;

    private sealed record Index(int Position) : Step;

    private sealed record Slice(int? Start, int? End) : Step;

    private sealed record Child(Step Left, Step Right) : Step;

    private sealed record Descendants(Step Left, Step Right) : Step;

    private sealed record Union(Step Left, Step Right) : Step;

    /// <summary>Every value <paramref name="query"/> matches in <paramref name="data"/>, in order.</summary>
    public static List<object?> Find(object? data, string query, int maxResults = 100_000)
    {
        var path = new Parser(query).ParseAll();
        var results = new List<object?>();
        foreach (var match in Find(path, data, data))
        {
            if (results.Count >= maxResults)
            {
                throw new ExpressionLimitException($"jsonpath_query matched more than {maxResults} values");
            }

            results.Add(match);
        }

        return results;
    }

    private static IEnumerable<object?> Find(Step step, object? datum, object? root) => step switch
    {
        Root => [root],
        This => [datum],
        Fields f => FindFields(f, datum),
        Index i => datum switch
        {
            List<object?> list when Normalize(i.Position, list.Count) is { } at => [list[at]],
            string s when s.Length > 0 && Normalize(i.Position, s.Length) is { } at => [s[at].ToString()],
            _ => [],
        },
        Slice s => FindSlice(s, datum),
        Child c => Find(c.Left, datum, root).SelectMany(d => Find(c.Right, d, root)),
        Descendants d => Find(d.Left, datum, root).SelectMany(d2 => Recurse(d.Right, d2, root)),
        Union u => Find(u.Left, datum, root).Concat(Find(u.Right, datum, root)),
        _ => [],
    };

    private static int? Normalize(int position, int count)
    {
        var at = position < 0 ? count + position : position;
        return at >= 0 && at < count ? at : null;
    }

    private static IEnumerable<object?> FindFields(Fields fields, object? datum)
    {
        if (datum is not OrderedDictionary<string, object?> dict)
        {
            yield break;
        }

        var names = fields.Names.Contains("*") ? dict.Keys.ToList() : fields.Names;
        foreach (var name in names)
        {
            if (dict.TryGetValue(name, out var value))
            {
                yield return value;
            }
        }
    }

    private static IEnumerable<object?> FindSlice(Slice slice, object? datum)
    {
        // As jsonpath-rw: a value that is not a list is sliced as a list holding it.
        var list = datum as List<object?> ?? [datum];
        int Bound(int? b, int fallback) => b is not { } v ? fallback : Math.Clamp(v < 0 ? list.Count + v : v, 0, list.Count);
        var (start, end) = (Bound(slice.Start, 0), Bound(slice.End, list.Count));
        for (var i = start; i < end; i++)
        {
            yield return list[i];
        }
    }

    private static IEnumerable<object?> Recurse(Step right, object? datum, object? root)
    {
        foreach (var match in Find(right, datum, root))
        {
            yield return match;
        }

        IEnumerable<object?> children = datum switch
        {
            List<object?> list => list,
            OrderedDictionary<string, object?> dict => dict.Values,
            _ => [],
        };
        foreach (var child in children)
        {
            foreach (var match in Recurse(right, child, root))
            {
                yield return match;
            }
        }
    }

    private sealed class Parser(string text)
    {
        private const int MaxDepth = 32;

        // Steps chain into a left-deep tree that evaluation walks recursively: a query from a payload could otherwise
        // be long enough to overflow the stack, which no catch survives.
        private const int MaxSteps = 256;
        private int _steps;
        private int _position;
        private int _depth;

        public Step ParseAll()
        {
            var step = Expression();
            Skip();
            return _position < text.Length ? throw Error($"unexpected '{text[_position]}'") : step;
        }

        private Step Counted(Step step) => ++_steps > MaxSteps ? throw Error($"the query has more than {MaxSteps} steps") : step;

        // Lowest to highest: '..', '.', '|' (jsonpath-rw's precedence), each left-associative; brackets bind tightest.
        private Step Expression()
        {
            var left = Dotted();
            while (TryTake(".."))
            {
                left = Counted(new Descendants(left, Dotted()));
            }

            return left;
        }

        private Step Dotted()
        {
            var left = Unioned();
            while (!Peek("..") && TryTake("."))
            {
                left = Counted(new Child(left, Unioned()));
            }

            return left;
        }

        private Step Unioned()
        {
            var left = Postfix();
            while (TryTake("|"))
            {
                left = Counted(new Union(left, Postfix()));
            }

            return left;
        }

        private Step Postfix()
        {
            var step = Atom();
            while (Skip() < text.Length && text[_position] == '[')
            {
                step = Counted(new Child(step, Bracket()));
            }

            return step;
        }

        private Step Atom()
        {
            Skip();
            if (_position >= text.Length)
            {
                throw Error("expected a field, '$', '@', '[' or '('");
            }

            switch (text[_position])
            {
                case '$':
                    _position++;
                    return new Root();
                case '@':
                    _position++;
                    return new This();
                case '*':
                    _position++;
                    return new Fields(["*"]);
                case '[':
                    return Bracket();
                case '(':
                    // A query may come from data: its nesting is bounded, never the stack.
                    if (++_depth > MaxDepth)
                    {
                        throw Error($"parentheses nested deeper than {MaxDepth}");
                    }

                    _position++;
                    var inner = Expression();
                    Expect(")");
                    _depth--;
                    return inner;
                default:
                    return new Fields(FieldList());
            }
        }

        private Step Bracket()
        {
            Expect("[");
            Skip();
            Step step;
            if (TryTake("*"))
            {
                step = new Slice(null, null);
            }
            else if (_position < text.Length && (char.IsAsciiDigit(text[_position]) || text[_position] is '-' or ':'))
            {
                var start = Number();
                step = TryTake(":") ? new Slice(start, Number()) : start is { } n ? new Index(n) : throw Error("expected a number");
            }
            else
            {
                step = new Fields(FieldList());
            }

            Expect("]");
            return step;
        }

        private int? Number()
        {
            Skip();
            var start = _position;
            if (_position < text.Length && text[_position] == '-')
            {
                _position++;
            }

            while (_position < text.Length && char.IsAsciiDigit(text[_position]))
            {
                _position++;
            }

            if (_position == start)
            {
                return null;
            }

            return int.TryParse(text.AsSpan(start, _position - start), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)
                ? n
                : throw Error($"'{text[start.._position]}' is not a number JSONPath can index by");
        }

        private List<string> FieldList()
        {
            var names = new List<string> { Field() };
            while (TryTake(","))
            {
                names.Add(Field());
            }

            return names;
        }

        private string Field()
        {
            Skip();
            if (_position < text.Length && text[_position] is '\'' or '"')
            {
                var quote = text[_position++];
                var end = text.IndexOf(quote, _position);
                if (end < 0)
                {
                    throw Error("unterminated quoted field name");
                }

                var quoted = text[_position..end];
                _position = end + 1;
                return quoted;
            }

            var start = _position;
            while (_position < text.Length && (char.IsLetterOrDigit(text[_position]) || text[_position] is '_' or '-' or '@' or '$' || text[_position] > 0x7f))
            {
                _position++;
            }

            return _position > start ? text[start.._position] : throw Error("expected a field name");
        }

        private int Skip()
        {
            while (_position < text.Length && char.IsWhiteSpace(text[_position]))
            {
                _position++;
            }

            return _position;
        }

        private bool Peek(string token) => Skip() < text.Length && text.AsSpan(_position).StartsWith(token, StringComparison.Ordinal);

        private bool TryTake(string token)
        {
            if (!Peek(token))
            {
                return false;
            }

            _position += token.Length;
            return true;
        }

        private void Expect(string token)
        {
            if (!TryTake(token))
            {
                throw Error($"expected '{token}'");
            }
        }

        private JsonPathSyntaxException Error(string message) =>
            new($"{message} at character {_position + 1} of JSONPath '{(text.Length > 80 ? text[..80] + "…" : text)}'");
    }
}
