using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessStorm.Engine.Rules;

/// <summary>
/// A criteria operator with StackStorm's semantics (st2common operators): the payload value is compared with the
/// rule's pattern, with no type coercion; a null pattern never matches; values that cannot be compared do not match.
/// </summary>
public sealed class CriteriaOperator
{
    /// <summary>How long one regex may run before the criterion counts as no match.</summary>
    public static readonly TimeSpan RegexTimeout = TimeSpan.FromMilliseconds(100);

    private static readonly Dictionary<string, CriteriaOperator> ByName = Build();

    private CriteriaOperator(string name, Func<JsonNode?, bool, JsonNode?, object?, bool> evaluate, Func<JsonNode?, object?>? compile = null)
    {
        Name = name;
        Evaluate = evaluate;
        Compile = compile;
    }

    /// <summary>The canonical (long) name.</summary>
    public string Name { get; }

    /// <summary>(value, value was found, pattern, compiled pattern) → match.</summary>
    internal Func<JsonNode?, bool, JsonNode?, object?, bool> Evaluate { get; }

    /// <summary>Builds the compiled form of a pattern once (a regex); throws <see cref="ArgumentException"/> when it is invalid.</summary>
    internal Func<JsonNode?, object?>? Compile { get; }

    /// <summary>Every accepted name and alias, for error messages.</summary>
    public static IReadOnlyCollection<string> Names => ByName.Keys;

    public static bool TryGet(string name, out CriteriaOperator op) => ByName.TryGetValue(name.ToLowerInvariant(), out op!);

    private static Dictionary<string, CriteriaOperator> Build()
    {
        var operators = new Dictionary<string, CriteriaOperator>(StringComparer.Ordinal);
        void Add(CriteriaOperator op, params string[] aliases)
        {
            operators[op.Name] = op;
            foreach (var alias in aliases)
            {
                operators[alias] = op;
            }
        }

        Add(new("equals", (v, _, p, _) => p is not null && JsonNode.DeepEquals(v, p)), "eq");
        Add(new("contains", (v, _, p, _) => p is not null && Contains(v, p)));
        Add(new("regex", (v, _, p, re) => p is not null && v is JsonValue value && value.GetValueKind() == JsonValueKind.String
            && ((Regex)re!).IsMatch(value.GetValue<string>()), CompileRegex));
        Add(new("exists", (v, found, _, _) => found && v is not null));
        return operators;
    }

    // Python's `pattern in value`: substring for strings, membership for lists; anything else cannot be compared.
    private static bool Contains(JsonNode? value, JsonNode pattern) => value switch
    {
        JsonValue v when v.GetValueKind() == JsonValueKind.String && pattern is JsonValue p && p.GetValueKind() == JsonValueKind.String =>
            v.GetValue<string>().Contains(p.GetValue<string>(), StringComparison.Ordinal),
        JsonArray array => array.Any(item => JsonNode.DeepEquals(item, pattern)),
        JsonObject obj when pattern is JsonValue key && key.GetValueKind() == JsonValueKind.String => obj.ContainsKey(key.GetValue<string>()),
        _ => false,
    };

    private static object? CompileRegex(JsonNode? pattern)
    {
        if (pattern is null)
        {
            return null;
        }

        if (pattern is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
        {
            throw new ArgumentException("a regex pattern must be a string");
        }

        return new Regex(PythonRegex.ToDotNet(v.GetValue<string>()), RegexOptions.CultureInvariant, RegexTimeout);
    }
}

/// <summary>Translates the Python regex syntax StackStorm rules are written in to .NET's where the two differ.</summary>
public static class PythonRegex
{
    public static string ToDotNet(string pattern) => pattern
        .Replace("(?P<", "(?<", StringComparison.Ordinal)
        .Replace("(?P=", @"\k<", StringComparison.Ordinal) is var s && s.Contains(@"\k<", StringComparison.Ordinal)
            ? Regex.Replace(s, @"\\k<(\w+)\)", @"\k<$1>")
            : s;
}
