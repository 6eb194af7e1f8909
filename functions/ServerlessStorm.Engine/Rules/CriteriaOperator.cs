using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Rules;

/// <summary>
/// A criteria operator with StackStorm's semantics (st2common/operators.py), on values in the <see cref="Py"/>
/// model: no type coercion (1 is not "1"), a null pattern never matches (except for nequals, exists and nexists),
/// and an operation Python would refuse (comparing a string with a number, a substring of a number) is no match.
/// </summary>
public sealed class CriteriaOperator
{
    private static readonly Dictionary<string, CriteriaOperator> ByName = Build();

    private CriteriaOperator(string name, Func<object?, object?, object?, bool> evaluate, Func<object?, object?>? compile = null)
    {
        Name = name;
        Evaluate = evaluate;
        Compile = compile;
    }

    /// <summary>The canonical (long) name.</summary>
    public string Name { get; }

    public bool IsSearch => Name == "search";

    /// <summary>(value, pattern, compiled pattern) → match; may throw <see cref="PyTypeError"/> or a regex timeout.</summary>
    internal Func<object?, object?, object?, bool> Evaluate { get; }

    /// <summary>Builds the compiled form of a pattern (a regex) once; throws <see cref="ArgumentException"/> when it is invalid.</summary>
    internal Func<object?, object?>? Compile { get; }

    /// <summary>Every accepted name and alias, for error messages.</summary>
    public static IReadOnlyCollection<string> Names => ByName.Keys;

    public static bool TryGet(string name, out CriteriaOperator op) => ByName.TryGetValue(name.ToLowerInvariant(), out op!);

    /// <summary>The operator's compiled pattern: the one built at load, or built now for a pattern rendered from a template.</summary>
    internal object? Compiled(object? pattern, object? compiledAtLoad) =>
        compiledAtLoad ?? (Compile is null || pattern is null ? null : Compile(pattern));

    private static Dictionary<string, CriteriaOperator> Build()
    {
        var operators = new Dictionary<string, CriteriaOperator>(StringComparer.Ordinal);
        void Add(string name, Func<object?, object?, object?, bool> evaluate, Func<object?, object?>? compile = null, params string[] aliases)
        {
            var op = new CriteriaOperator(name, evaluate, compile);
            operators[name] = op;
            foreach (var alias in aliases)
            {
                operators[alias] = op;
            }
        }

        Add("equals", (v, p, _) => p is not null && Py.Equal(v, p), aliases: "eq");
        Add("nequals", (v, p, _) => !Py.Equal(v, p), aliases: "neq");
        Add("iequals", (v, p, _) => p is not null && Lower(v) == Lower(p), aliases: "ieq");
        Add("contains", (v, p, _) => p is not null && Py.Contains(v, p));
        Add("ncontains", (v, p, _) => p is not null && !Py.Contains(v, p));
        Add("icontains", (v, p, _) => p is not null && Lower(v).Contains(Lower(p), StringComparison.Ordinal));
        Add("incontains", (v, p, _) => p is not null && !Lower(v).Contains(Lower(p), StringComparison.Ordinal));
        Add("startswith", (v, p, _) => p is not null && Text(v).StartsWith(Text(p), StringComparison.Ordinal));
        Add("istartswith", (v, p, _) => p is not null && Lower(v).StartsWith(Lower(p), StringComparison.Ordinal));
        Add("endswith", (v, p, _) => p is not null && Text(v).EndsWith(Text(p), StringComparison.Ordinal));
        Add("iendswith", (v, p, _) => p is not null && Lower(v).EndsWith(Lower(p), StringComparison.Ordinal));
        Add("lessthan", (v, p, _) => p is not null && Py.Compare(v, p, "<") < 0, aliases: "lt");
        Add("greaterthan", (v, p, _) => p is not null && Py.Compare(v, p, ">") > 0, aliases: "gt");
        Add("matchwildcard", (v, p, re) => p is not null && ((Regex)re!).IsMatch(Text(v)), p => Wildcard(Text(p)));
        Add("regex", (v, p, re) => p is not null && ((Regex)re!).IsMatch(Text(v)), p => PythonRegex.Get(Text(p)));
        Add("iregex", (v, p, re) => p is not null && ((Regex)re!).IsMatch(Text(v)), p => PythonRegex.Get(Text(p), RegexOptions.IgnoreCase));
        Add("matchregex", (v, p, re) => p is not null && ((Regex)re!).Match(Text(v)) is { Success: true, Index: 0 }, p => PythonRegex.Get(Text(p), RegexOptions.Singleline));
        Add("timediff_lt", (v, p, _) => p is not null && SecondsSince(v) < Seconds(p), aliases: "td_lt");
        Add("timediff_gt", (v, p, _) => p is not null && SecondsSince(v) > Seconds(p), aliases: "td_gt");
        Add("exists", (v, _, _) => v is not null);
        Add("nexists", (v, _, _) => v is null);
        Add("inside", (v, p, _) => p is not null && Py.Contains(p, v), aliases: "in");
        Add("ninside", (v, p, _) => p is not null && !Py.Contains(p, v), aliases: "nin");
        // search needs child criteria and a payload lookup; RuleMatcher evaluates it.
        Add("search", (_, _, _) => throw new InvalidOperationException("search is evaluated by the rule matcher"));
        return operators;
    }

    // Python calls str methods on the value: anything but a string fails (AttributeError / TypeError).
    private static string Text(object? value) =>
        value as string ?? throw new PyTypeError($"expected a string, got '{Py.TypeName(value)}'");

    private static string Lower(object? value) => Text(value).ToLowerInvariant();

    private static double SecondsSince(object? value)
    {
        var text = Text(value);
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
        {
            throw new PyTypeError($"'{text}' is not a date and time");
        }

        return (DateTimeOffset.UtcNow - at).TotalSeconds;
    }

    // float(pattern): numbers, and strings that hold one.
    private static double Seconds(object? pattern) => pattern switch
    {
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        string s => throw new PyTypeError($"could not convert string to float: '{s}'"),
        _ => Py.ToDouble(pattern),
    };

    /// <summary>fnmatch: <c>*</c>, <c>?</c>, <c>[seq]</c>, <c>[!seq]</c>; case-sensitive; the whole value must match.</summary>
    private static Regex Wildcard(string pattern)
    {
        var regex = new StringBuilder("^(?s:");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            switch (c)
            {
                case '*':
                    regex.Append(".*");
                    break;
                case '?':
                    regex.Append('.');
                    break;
                case '[':
                    var close = pattern.IndexOf(']', i + (i + 1 < pattern.Length && pattern[i + 1] == '!' ? 2 : 1) + 1);
                    if (close < 0)
                    {
                        regex.Append(@"\[");
                        break;
                    }

                    var set = pattern[(i + 1)..close];
                    regex.Append('[').Append(set.StartsWith('!') ? "^" + Regex.Escape(set[1..]) : Regex.Escape(set)).Append(']');
                    i = close;
                    break;
                default:
                    regex.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }

        return new Regex(regex.Append(@")\z").ToString(), RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
    }
}
