using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ServerlessStorm.Engine.Expressions.Syntax;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>The filters, tests and value methods a template may use: a fixed list, nothing else is reachable.</summary>
internal sealed partial class Evaluator
{
    public static readonly IReadOnlySet<string> FilterNames = new HashSet<string>(StringComparer.Ordinal)
    {
        "default", "d", "to_json_string", "to_yaml_string", "to_complex", "json_escape", "from_json_string", "from_yaml_string",
        "regex_match", "regex_replace", "regex_search", "regex_substring", "upper", "lower", "capitalize", "title", "trim",
        "replace", "int", "float", "string", "length", "count", "join", "first", "last", "use_none", "abs", "round", "list",
        "sort", "reverse", "unique", "min", "max", "sum", "basename", "dirname", "tojson", "items", "dictsort", "bool",
        "decrypt_kv", "jsonpath_query", "to_human_time_from_seconds", "version_compare", "version_more_than", "version_less_than",
        "version_equal", "version_match", "version_bump_major", "version_bump_minor", "version_bump_patch", "version_strip_patch",
    };

    private object? ApplyFilter(FilterExpr filter)
    {
        var value = Evaluate(filter.Target);
        if (filter.Name is "default" or "d")
        {
            var fallback = Arg(filter, 0, "default_value") is { } e ? Evaluate(e) : "";
            var boolean = Arg(filter, 1, "boolean") is { } b && Py.Truthy(Evaluate(b));
            return value is Undefined || (boolean && !Py.Truthy(value)) ? fallback : value;
        }

        if (!FilterNames.Contains(filter.Name))
        {
            throw Fail($"unknown filter '{filter.Name}'", filter.Offset);
        }

        if (filter.Name == "decrypt_kv")
        {
            return DecryptKv(filter, value);
        }

        value = Defined(value, filter.Target.Offset);
        object? A(int i, string name, object? fallback = null) => Arg(filter, i, name) is { } e ? Defined(Evaluate(e), e.Offset) : fallback;
        string Text(object? v) => v as string ?? Py.Str(v);

        return filter.Name switch
        {
            "to_json_string" => Py.JsonDumps(value, A(0, "indent") is { } indent ? (int)Py.ToLong(indent) : null,
                Py.Truthy(A(1, "sort_keys", false)), itemSeparator: ",", keySeparator: ": "),
            "to_complex" => Py.JsonDumps(value),
            "tojson" => Py.JsonDumps(value, sortKeys: true),
            "json_escape" => Py.JsonDumps(value).Trim('"'),
            "to_yaml_string" => ToYaml(value),
            "from_json_string" => FromJson(Text(value), filter.Offset),
            "from_yaml_string" => FromYaml(Text(value), filter.Offset),
            "regex_match" => Regex(filter, A(1, "ignorecase", false), A(0, "pattern")).Match(Text(value)) is { Success: true, Index: 0 },
            "regex_search" => Regex(filter, A(1, "ignorecase", false), A(0, "pattern")).IsMatch(Text(value)),
            "regex_replace" => CheckLength(Regex(filter, A(2, "ignorecase", false), A(0, "pattern"))
                .Replace(Text(value), PythonRegex.Replacement(Text(A(1, "replacement", "")))), filter.Offset),
            "regex_substring" => Substring(Regex(filter, A(2, "ignorecase", false), A(0, "pattern")), Text(value), A(1, "result_index", 0L), filter.Offset),
            "upper" => Text(value).ToUpperInvariant(),
            "lower" => Text(value).ToLowerInvariant(),
            "capitalize" => Text(value) is { Length: > 0 } c ? char.ToUpperInvariant(c[0]) + c[1..].ToLowerInvariant() : "",
            "title" => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(Text(value).ToLowerInvariant()),
            "trim" => A(0, "chars") is string chars ? Text(value).Trim(chars.ToCharArray()) : Text(value).Trim(),
            "replace" => CheckLength(Replace(Text(value), Text(A(0, "old", "")), Text(A(1, "new", ""))), filter.Offset),
            "int" => ToInt(value, A(0, "default", 0L)),
            "float" => ToFloat(value, A(0, "default", 0.0)),
            "bool" => Py.Truthy(value),
            "string" => Py.Str(value),
            "length" or "count" => (long)Length(value, filter.Offset),
            "join" => CheckLength(string.Join(Text(A(0, "d", "")), Iterate(value, filter.Offset).Select(Py.Str)), filter.Offset),
            "first" => Iterate(value, filter.Offset).FirstOrDefault(_ => true, new Undefined("first of an empty sequence")),
            "last" => Iterate(value, filter.Offset).LastOrDefault(_ => true, new Undefined("last of an empty sequence")),
            "use_none" => value,
            "abs" => value is double d ? (object)Math.Abs(d) : Math.Abs(Py.ToLong(value)),
            "round" => Math.Round(Py.ToDouble(value), (int)Py.ToLong(A(0, "precision", 0L)), MidpointRounding.AwayFromZero),
            "list" => Iterate(value, filter.Offset).ToList(),
            "sort" => Sorted(Iterate(value, filter.Offset), Py.Truthy(A(0, "reverse", false)), filter.Offset),
            "reverse" => value is string s ? new string([.. s.Reverse()]) : Iterate(value, filter.Offset).Reverse().ToList(),
            "unique" => Unique(Iterate(value, filter.Offset)),
            "min" => Sorted(Iterate(value, filter.Offset), false, filter.Offset).FirstOrDefault(_ => true, new Undefined("min of an empty sequence")),
            "max" => Sorted(Iterate(value, filter.Offset), true, filter.Offset).FirstOrDefault(_ => true, new Undefined("max of an empty sequence")),
            "sum" => Iterate(value, filter.Offset).Aggregate(A(1, "start", 0L), Py.Add),
            "basename" => Path.GetFileName(Text(value)),
            "dirname" => Path.GetDirectoryName(Text(value)) ?? "",
            "items" or "dictsort" => Items(value, filter.Name == "dictsort", filter.Offset),
            "jsonpath_query" => JsonPathQuery(value, A(0, "query"), filter.Offset),
            "to_human_time_from_seconds" => HumanTime(value, filter.Offset),
            "version_compare" => (long)SemVer(value, filter).CompareTo(SemVer(A(0, "pattern"), filter)),
            "version_more_than" => SemVer(value, filter).CompareTo(SemVer(A(0, "pattern"), filter)) > 0,
            "version_less_than" => SemVer(value, filter).CompareTo(SemVer(A(0, "pattern"), filter)) < 0,
            "version_equal" => SemVer(value, filter).CompareTo(SemVer(A(0, "pattern"), filter)) == 0,
            "version_match" => VersionMatch(SemVer(value, filter), A(0, "pattern"), filter),
            "version_bump_major" => (SemVer(value, filter) with { Minor = 0, Patch = 0, Prerelease = null, Build = null, Major = SemVer(value, filter).Major + 1 }).ToString(),
            "version_bump_minor" => (SemVer(value, filter) with { Patch = 0, Prerelease = null, Build = null, Minor = SemVer(value, filter).Minor + 1 }).ToString(),
            "version_bump_patch" => (SemVer(value, filter) with { Prerelease = null, Build = null, Patch = SemVer(value, filter).Patch + 1 }).ToString(),
            "version_strip_patch" => SemVer(value, filter) is var v ? $"{v.Major}.{v.Minor}" : "",
            _ => throw Fail($"unknown filter '{filter.Name}'", filter.Offset),
        };
    }

    private bool ApplyTest(TestExpr test)
    {
        var value = Evaluate(test.Target);
        object? A(int i) => i < test.Args.Count ? Defined(Evaluate(test.Args[i]), test.Args[i].Offset) : throw Fail($"test '{test.Name}' needs an argument", test.Offset);
        var result = test.Name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            _ when value is Undefined u => throw Fail($"'{u.Name}' is undefined", test.Target.Offset),
            "none" => value is null,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "integer" => value is long,
            "float" => value is double,
            "number" => value is long or double,
            "string" => value is string,
            "mapping" => value is OrderedDictionary<string, object?>,
            "sequence" or "iterable" => value is string or List<object?> or OrderedDictionary<string, object?>,
            "even" => Py.ToLong(value) % 2 == 0,
            "odd" => Py.ToLong(value) % 2 != 0,
            "divisibleby" => Py.ToLong(value) % Py.ToLong(A(0)) == 0,
            "eq" or "equalto" or "sameas" or "==" => Py.Equal(value, A(0)),
            "ne" or "!=" => !Py.Equal(value, A(0)),
            "lt" or "lessthan" => Py.Compare(value, A(0)) < 0,
            "gt" or "greaterthan" => Py.Compare(value, A(0)) > 0,
            "le" => Py.Compare(value, A(0)) <= 0,
            "ge" => Py.Compare(value, A(0)) >= 0,
            "in" => Py.Contains(A(0), value),
            "lower" => value is string l && l == l.ToLowerInvariant(),
            "upper" => value is string up && up == up.ToUpperInvariant(),
            _ => throw Fail($"unknown test '{test.Name}'", test.Offset),
        };
        return result != test.Negated;
    }

    private object? Method(object? target, CallExpr call)
    {
        target = Defined(target, call.Offset);
        var args = call.Args.Select(a => Defined(Evaluate(a), a.Offset)).ToList();
        string S(int i) => i < args.Count ? args[i] as string ?? Py.Str(args[i]) : throw Fail($"{call.Name}() needs an argument", call.Offset);
        return (target, call.Name) switch
        {
            (OrderedDictionary<string, object?> d, "items") => d.Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList(),
            (OrderedDictionary<string, object?> d, "keys") => d.Keys.Cast<object?>().ToList(),
            (OrderedDictionary<string, object?> d, "values") => d.Values.ToList(),
            (OrderedDictionary<string, object?> d, "get") => d.TryGetValue(S(0), out var v) ? v : args.Count > 1 ? args[1] : null,
            (string s, "upper") => s.ToUpperInvariant(),
            (string s, "lower") => s.ToLowerInvariant(),
            (string s, "strip") => args.Count > 0 ? s.Trim(S(0).ToCharArray()) : s.Trim(),
            (string s, "lstrip") => args.Count > 0 ? s.TrimStart(S(0).ToCharArray()) : s.TrimStart(),
            (string s, "rstrip") => args.Count > 0 ? s.TrimEnd(S(0).ToCharArray()) : s.TrimEnd(),
            (string s, "split") => (args.Count > 0 && args[0] is string sep ? s.Split(sep) : s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Select(p => (object?)p).ToList(),
            (string s, "startswith") => s.StartsWith(S(0), StringComparison.Ordinal),
            (string s, "endswith") => s.EndsWith(S(0), StringComparison.Ordinal),
            (string s, "replace") => CheckLength(Replace(s, S(0), S(1)), call.Offset),
            (string s, "join") => CheckLength(string.Join(s, Iterate(args.FirstOrDefault(), call.Offset).Select(Py.Str)), call.Offset),
            (string s, "title") => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant()),
            (string s, "capitalize") => s.Length > 0 ? char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant() : "",
            (List<object?> l, "index") => (long)l.FindIndex(x => Py.Equal(x, args.FirstOrDefault())) is var i and >= 0 ? i : throw Fail("value is not in the list", call.Offset),
            (List<object?> l, "count") => (long)l.Count(x => Py.Equal(x, args.FirstOrDefault())),
            _ => throw Fail($"'{Py.TypeName(target)}' has no method '{call.Name}' available in templates", call.Offset),
        };
    }

    // Python's str.replace: an empty "old" inserts "new" before every character and at the end.
    private static string Replace(string text, string old, string replacement) => old.Length == 0
        ? replacement + string.Concat(text.Select(c => c + replacement))
        : text.Replace(old, replacement, StringComparison.Ordinal);

    private static Expr? Arg(FilterExpr filter, int index, string name) =>
        filter.Kwargs.TryGetValue(name, out var byName) ? byName : index < filter.Args.Count ? filter.Args[index] : null;

    private Regex Regex(FilterExpr filter, object? ignoreCase, object? pattern)
    {
        if (pattern is not string text)
        {
            throw Fail($"{filter.Name} needs a pattern (a string)", filter.Offset);
        }

        try
        {
            return PythonRegex.Get(text, Py.Truthy(ignoreCase) ? RegexOptions.IgnoreCase : RegexOptions.None);
        }
        catch (ArgumentException ex)
        {
            throw Fail($"{filter.Name}: invalid pattern: {ex.Message}", filter.Offset, ex);
        }
    }

    // re.findall: the whole match when the pattern has no groups, the group when it has one, a list of groups otherwise.
    private object? Substring(Regex regex, string value, object? index, int offset)
    {
        var matches = regex.Matches(value);
        var i = (int)Py.ToLong(index);
        i = i < 0 ? matches.Count + i : i;
        if (i < 0 || i >= matches.Count)
        {
            throw Fail($"regex_substring: there is no match number {Py.Str(index)} ({matches.Count} found)", offset);
        }

        var groups = matches[i].Groups;
        return groups.Count switch
        {
            1 => groups[0].Value,
            2 => groups[1].Value,
            _ => Enumerable.Range(1, groups.Count - 1).Select(g => (object?)groups[g].Value).ToList(),
        };
    }

    private static object? ToInt(object? value, object? fallback) => value switch
    {
        long l => l,
        bool b => b ? 1L : 0L,
        double d when double.IsFinite(d) => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) => (long)Math.Truncate(d),
        _ => fallback,
    };

    private static object? ToFloat(object? value, object? fallback) => value switch
    {
        double d => d,
        long or bool => Py.ToDouble(value),
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => fallback,
    };

    private int Length(object? value, int offset) => value switch
    {
        string s => s.Length,
        List<object?> l => l.Count,
        OrderedDictionary<string, object?> d => d.Count,
        _ => throw Fail($"object of type '{Py.TypeName(value)}' has no len()", offset),
    };

    private List<object?> Sorted(IEnumerable<object?> items, bool reverse, int offset)
    {
        var list = items.ToList();
        try
        {
            list.Sort((a, b) => Py.Compare(a, b));
        }
        catch (InvalidOperationException ex) when (ex.InnerException is PyTypeError type)
        {
            throw Fail(type.Message, offset, type);
        }

        if (reverse)
        {
            list.Reverse();
        }

        return list;
    }

    private static List<object?> Unique(IEnumerable<object?> items)
    {
        var result = new List<object?>();
        foreach (var item in items.Where(item => !result.Any(seen => Py.Equal(seen, item))))
        {
            result.Add(item);
        }

        return result;
    }

    private List<object?> Items(object? value, bool sorted, int offset)
    {
        if (value is not OrderedDictionary<string, object?> dict)
        {
            throw Fail($"'{Py.TypeName(value)}' is not a mapping", offset);
        }

        var pairs = sorted ? dict.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase) : dict.AsEnumerable();
        return [.. pairs.Select(p => (object?)new List<object?> { p.Key, p.Value })];
    }

    private object? FromJson(string text, int offset)
    {
        try
        {
            return Py.FromJson(JsonNode.Parse(text));
        }
        catch (JsonException ex)
        {
            throw Fail($"from_json_string: not valid JSON: {ex.Message}", offset, ex);
        }
    }

    private object? FromYaml(string text, int offset)
    {
        try
        {
            return Py.FromJson(BoundedYamlReader.Read(text)?.ToJson());
        }
        catch (YamlReadException ex)
        {
            throw Fail($"from_yaml_string: not valid YAML at {ex.Position}: {ex.Message}", offset, ex);
        }
    }

    // PyYAML's safe_dump with default_flow_style=False: block style, lists not indented under their key.
    private static string ToYaml(object? value)
    {
        var builder = new System.Text.StringBuilder();
        Write(value, 0, false);
        return builder.ToString();

        void Write(object? v, int indent, bool inline)
        {
            switch (v)
            {
                case OrderedDictionary<string, object?> { Count: > 0 } dict:
                    var first = true;
                    foreach (var (key, child) in dict)
                    {
                        if (!(first && inline))
                        {
                            builder.Append(' ', indent);
                        }

                        first = false;
                        builder.Append(Scalar(key)).Append(':');
                        WriteChild(child, indent);
                    }

                    break;
                case List<object?> { Count: > 0 } list:
                    var firstItem = true;
                    foreach (var item in list)
                    {
                        if (!(firstItem && inline))
                        {
                            builder.Append(' ', indent);
                        }

                        firstItem = false;
                        builder.Append("- ");
                        if (item is OrderedDictionary<string, object?> { Count: > 0 } or List<object?> { Count: > 0 })
                        {
                            Write(item, indent + 2, true);
                        }
                        else
                        {
                            builder.Append(Scalar(item)).Append('\n');
                        }
                    }

                    break;
                default:
                    builder.Append(Scalar(v)).Append('\n');
                    if (v is not (OrderedDictionary<string, object?> or List<object?>))
                    {
                        builder.Append("...\n");
                    }

                    break;
            }
        }

        void WriteChild(object? child, int indent)
        {
            switch (child)
            {
                case OrderedDictionary<string, object?> { Count: > 0 }:
                    builder.Append('\n');
                    Write(child, indent + 2, false);
                    break;
                case List<object?> { Count: > 0 }:
                    builder.Append('\n');
                    Write(child, indent, false);
                    break;
                default:
                    builder.Append(' ').Append(Scalar(child)).Append('\n');
                    break;
            }
        }

        static string Scalar(object? v) => v switch
        {
            null => "null",
            bool b => b ? "true" : "false",
            string s when NeedsQuotes(s) => "'" + s.Replace("'", "''", StringComparison.Ordinal) + "'",
            string s => s,
            OrderedDictionary<string, object?> => "{}",
            List<object?> => "[]",
            _ => Py.Str(v),
        };

        static bool NeedsQuotes(string s) =>
            s.Length == 0 || s != s.Trim() || ":#{}[],&*!|>'\"%@`".Contains(s[0], StringComparison.Ordinal) || s.Contains(": ", StringComparison.Ordinal)
            || s.Contains(" #", StringComparison.Ordinal) || s.Contains('\n', StringComparison.Ordinal)
            || new YamlScalar(SourcePosition.Unknown, s, true, null).ToJson() is not JsonValue v || v.GetValueKind() != JsonValueKind.String;
    }
}
