using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Expressions.Yaql;

/// <summary>
/// The YAQL standard library as Orquesta's context has it (camelCase names), and Orquesta's and StackStorm's
/// workflow functions. A function is called as <c>f(x)</c>, a method as <c>x.f()</c>; an extension method both ways,
/// its receiver then being the first argument.
/// </summary>
internal static class YaqlFunctions
{
    private delegate object? Body(YaqlInvocation call);

    private static readonly Dictionary<string, Body> Functions = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, Body> Methods = new(StringComparer.Ordinal);

    static YaqlFunctions()
    {
        RegisterWorkflow();
        RegisterStackStorm();
        RegisterCommon();
        RegisterStrings();
        RegisterCollections();
        RegisterQueries();
    }

    /// <summary>The names callable as functions, for tests and error messages.</summary>
    public static IEnumerable<string> FunctionNames => Functions.Keys;

    public static IEnumerable<string> MethodNames => Methods.Keys;

    // What YAQL gives as an iterator rather than a list.
    private static readonly HashSet<string> Lazy = new(StringComparer.Ordinal)
    {
        "select", "where", "filter", "skip", "take", "limit", "skipWhile", "takeWhile", "selectMany", "reverse", "append",
        "enumerate", "keys", "values", "items", "flatten", "range", "groupBy", "orderBy", "orderByDescending", "distinct",
        "concat", "delete", "zipLongest", "slice", "accumulate", "repeat", "insertMany", "splitWhere", "selectAllCases",
        "examine", "replace", "zip",
    };

    public static object? Invoke(YaqlInvocation call)
    {
        var result = Dispatch(call);
        if (result is List<object?> built)
        {
            call.Evaluator.CheckSize(built, call.Offset);
        }

        return result is List<object?> list and not YaqlLazy and not YaqlSet && Lazy.Contains(call.Name) && (call.HasReceiver || call.Name is "range" or "distinct" or "selectAllCases" or "examine")
            ? new YaqlLazy(list)
            : result;
    }

    private static object? Dispatch(YaqlInvocation call)
    {
        if (call.HasReceiver)
        {
            if (Methods.TryGetValue(call.Name, out var method))
            {
                return method(call);
            }

            throw YaqlEvaluator.NoFunction(Functions.ContainsKey(call.Name)
                ? $"'{call.Name}' is a function, not a method: write {call.Name}(…)"
                : $"unknown method '{call.Name}' for a {YaqlValues.TypeName(call.Receiver)} receiver", call.Offset);
        }

        if (Functions.TryGetValue(call.Name, out var function))
        {
            return function(call);
        }

        throw YaqlEvaluator.NoFunction(Methods.ContainsKey(call.Name)
            ? $"'{call.Name}' is a method: write value.{call.Name}(…)"
            : $"unknown function '{call.Name}'", call.Offset);
    }

    /// <summary><c>value.name</c> where value is not a dict: the datetime properties.</summary>
    public static object? Property(object? receiver, string name, int offset) => (receiver, name) switch
    {
        (DateTimeOffset t, "year") => (object)(long)t.Year,
        (DateTimeOffset t, "month") => (long)t.Month,
        (DateTimeOffset t, "day") => (long)t.Day,
        (DateTimeOffset t, "hour") => (long)t.Hour,
        (DateTimeOffset t, "minute") => (long)t.Minute,
        (DateTimeOffset t, "second") => (long)t.Second,
        (DateTimeOffset t, "weekday") => (long)(((int)t.DayOfWeek + 6) % 7),
        (DateTimeOffset t, "timestamp") => t.ToUnixTimeMilliseconds() / 1000.0,
        _ => throw YaqlEvaluator.NoFunction($"'{name}' is not a property of a {YaqlValues.TypeName(receiver)} (only a dict has keys)", offset),
    };

    public static Regex Regex(string pattern, int offset)
    {
        try
        {
            return PythonRegex.Get(pattern);
        }
        catch (ArgumentException ex)
        {
            throw YaqlEvaluator.Fail($"invalid regular expression '{pattern}': {ex.Message}", offset);
        }
    }

    private static void Function(string name, Body body) => Functions[name] = body;

    private static void Method(string name, Body body) => Methods[name] = body;

    // Callable both ways; as a function the first argument is the receiver.
    private static void Extension(string name, Body body)
    {
        Methods[name] = body;
        Functions[name] = call =>
        {
            call.ShiftReceiver();
            return call.HasReceiver ? body(call) : throw call.NoMatch();
        };
    }

    // ---- Orquesta and StackStorm ------------------------------------------------------------------------------

    private static void RegisterWorkflow()
    {
        static IWorkflowFunctions Workflow(YaqlInvocation call) =>
            call.Evaluator.Scope.Workflow ?? throw call.Fail("only available in workflows");

        string? Name(YaqlInvocation call)
        {
            Arity(call, 0, 1);
            return call.Count == 0 ? null : call.Arg(0) switch
            {
                string s => s,
                null => null,
                var other => throw call.Fail($"takes a name, not a {YaqlValues.TypeName(other)}"),
            };
        }

        Function("ctx", call => Workflow(call).Context(Name(call)));
        Function("item", call => Workflow(call).Item(Name(call)));
        Function("result", call => { Arity(call, 0, 0); return Workflow(call).Result(); });
        Function("succeeded", call => { Arity(call, 0, 0); return Workflow(call).Succeeded(); });
        Function("failed", call => { Arity(call, 0, 0); return Workflow(call).Failed(); });
        Function("completed", call => { Arity(call, 0, 0); return Workflow(call).Completed(); });
        Function("task_status", call => Workflow(call).TaskStatus(Name(call) ?? throw call.Fail("needs a task name")) ?? "null");
        Function("task", call => Workflow(call).Task(Name(call)));
        Function("json", call =>
        {
            Arity(call, 1, 1);
            return call.Arg(0) switch
            {
                string s => ParseJson(s, call),
                var other => throw call.Fail($"takes a string, not a {YaqlValues.TypeName(other)}"),
            };
        });
        Function("zip", call =>
        {
            var lists = call.Args().Select(a => a is null ? [] : a as List<object?> ?? throw call.Fail($"takes lists, not a {YaqlValues.TypeName(a)}")).ToList();
            if (lists.Count == 1)
            {
                return lists[0];
            }

            var pad = call.NamedArg("pad");
            var length = lists.Count == 0 ? 0 : lists.Max(l => l.Count);
            return Enumerable.Range(0, length).Select(i => (object?)lists.Select(l => i < l.Count ? l[i] : pad).ToList()).ToList();
        });
        Function("st2kv", call =>
        {
            Arity(call, 1, 1);
            var key = call.Arg(0) as string ?? throw call.Fail("the key must be a string");
            if (call.NamedArg("decrypt", false) is not bool)
            {
                throw call.Fail("decrypt must be true or false");
            }

            var lookup = call.Evaluator.Scope.KeyValues ?? throw call.Fail($"no datastore is available here to read '{key}'");
            var (scope, name) = DatastoreKey(key);
            var value = lookup.Get(scope, name);
            if (value is not null)
            {
                return value;
            }

            return call.HasNamed("default") ? call.NamedArg("default") : throw call.Fail($"the datastore has no key '{key}' in the {scope} scope");
        });
    }

    // StackStorm registers its Jinja filters as Orquesta functions too; these share the filters' code.
    private static readonly Dictionary<string, string> StackStormFunctions = new(StringComparer.Ordinal)
    {
        ["basename"] = "basename", ["dirname"] = "dirname", ["from_json_string"] = "from_json_string", ["json_parse"] = "from_json_string",
        ["from_yaml_string"] = "from_yaml_string", ["yaml_parse"] = "from_yaml_string", ["to_json_string"] = "to_json_string",
        ["json_dump"] = "to_json_string", ["to_yaml_string"] = "to_yaml_string", ["yaml_dump"] = "to_yaml_string",
        ["json_escape"] = "json_escape", ["regex_match"] = "regex_match", ["regex_replace"] = "regex_replace",
        ["regex_search"] = "regex_search", ["regex_substring"] = "regex_substring", ["use_none"] = "use_none",
        ["jsonpath_query"] = "jsonpath_query", ["to_human_time_from_seconds"] = "to_human_time_from_seconds",
        ["version_compare"] = "version_compare", ["version_more_than"] = "version_more_than", ["version_less_than"] = "version_less_than",
        ["version_equal"] = "version_equal", ["version_match"] = "version_match", ["version_bump_major"] = "version_bump_major",
        ["version_bump_minor"] = "version_bump_minor", ["version_bump_patch"] = "version_bump_patch", ["version_strip_patch"] = "version_strip_patch",
    };

    private static void RegisterStackStorm()
    {
        foreach (var (name, filter) in StackStormFunctions)
        {
            Function(name, call =>
            {
                if (call.Count == 0)
                {
                    throw call.NoMatch();
                }

                var args = call.Args().Select(a => YaqlValues.ToModel(a, call.Offset)).ToList();
                var named = call.Named.Select(p => KeyValuePair.Create(p.Key, YaqlValues.ToModel(call.Evaluator.Evaluate(p.Value, call.Scope), call.Offset)));
                return Evaluator.ApplyFilter(call.Evaluator.Scope, filter, args[0], args.Skip(1), named, call.Offset);
            });
        }
    }

    /// <summary>How StackStorm reads st2kv's key: <c>system.NAME</c> is a system key, anything else the user's.</summary>
    public static (string Scope, string Name) DatastoreKey(string key) =>
        key.StartsWith("system.", StringComparison.Ordinal) ? ("system", key["system.".Length..]) : ("user", key);

    private static object? ParseJson(string text, YaqlInvocation call)
    {
        try
        {
            return Py.FromJson(System.Text.Json.Nodes.JsonNode.Parse(text));
        }
        catch (JsonException ex)
        {
            throw call.Fail($"the text is not JSON: {ex.Message}");
        }
    }

    // ---- common, boolean, math, branching, system ------------------------------------------------------------

    private static void RegisterCommon()
    {
        Function("int", call =>
        {
            Arity(call, 1, 1);
            return call.Arg(0) switch
            {
                null => 0L,
                long l => l,
                bool b => b ? 1L : 0L,
                double d when double.IsFinite(d) => (long)Math.Truncate(d),
                string s when long.TryParse(s.Trim().Replace("_", "", StringComparison.Ordinal), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
                var other => throw call.Fail($"cannot convert {YaqlValues.Repr(other)} to an integer"),
            };
        });
        Function("float", call =>
        {
            Arity(call, 1, 1);
            return call.Arg(0) switch
            {
                null => 0.0,
                long l => (double)l,
                bool b => b ? 1.0 : 0.0,
                double d => d,
                string s when ParseFloat(s) is { } d => d,
                var other => throw call.Fail($"cannot convert {YaqlValues.Repr(other)} to a float"),
            };
        });
        Function("bool", call => { Arity(call, 1, 1); return YaqlValues.Truthy(call.Arg(0)); });
        Function("str", call => { Arity(call, 1, 1); return YaqlValues.Str(call.Arg(0)); });
        Function("isBoolean", call => Is(call, v => v is bool));
        Function("isInteger", call => Is(call, v => v is long));
        Function("isNumber", call => Is(call, v => v is long or double));
        Function("isString", call => Is(call, v => v is string));
        Function("isList", call => Is(call, v => v is List<object?>));
        Function("isDict", call => Is(call, v => v is OrderedDictionary<string, object?>));
        Function("isIterable", call => Is(call, v => v is List<object?>));
        Function("isDatetime", call => Is(call, v => v is DateTimeOffset));
        Function("isRegex", call => Is(call, v => v is Regex));
        Function("abs", call => Arity(call, 1, 1) && call.Arg(0) is var v ? v switch
        {
            long l => (object)Math.Abs(l),
            double d => Math.Abs(d),
            _ => throw call.NoMatch(),
        } : null);
        Function("round", call =>
        {
            Arity(call, 1, 2);
            var digits = call.Arg(1, 0L) as long? ?? throw call.NoMatch();
            return call.Arg(0) switch
            {
                long l when digits >= 0 => (object)l,
                long l => (long)(Math.Round(l / Math.Pow(10, -digits), MidpointRounding.ToEven) * Math.Pow(10, -digits)),
                // Python rounds the exact binary value: 2.675 is 2.67499… and rounds down.
                double d => double.Parse(d.ToString("F" + Math.Clamp(digits, 0, 15).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
                _ => throw call.NoMatch(),
            };
        });
        Function("pow", call =>
        {
            Arity(call, 2, 3);
            var (a, b) = (call.Arg(0), call.Arg(1));
            if (!YaqlValues.IsNumber(a) || !YaqlValues.IsNumber(b))
            {
                throw call.NoMatch();
            }

            if (call.Count == 3)
            {
                if (a is not long x || b is not long y || call.Arg(2) is not long m || m == 0 || y < 0)
                {
                    throw call.Fail("the three-argument form takes integers, a non-negative exponent and a non-zero modulus");
                }

                var result = (long)System.Numerics.BigInteger.ModPow(x, y, m);
                return result != 0 && (result < 0) != (m < 0) ? result + m : result;
            }

            if (a is long p && b is long q && q >= 0)
            {
                var big = System.Numerics.BigInteger.Pow(p, (int)Math.Min(q, 10_000));
                return big >= long.MinValue && big <= long.MaxValue ? (long)big : throw call.Fail("the result is too large");
            }

            return Math.Pow(Py.ToDouble(a), Py.ToDouble(b));
        });
        Function("sign", call => Arity(call, 1, 1) && call.Arg(0) is var v && YaqlValues.IsNumber(v) ? (long)Math.Sign(Py.ToDouble(v)) : throw call.NoMatch());
        // max(a, b) compares two values; collection.max(initial) folds a collection.
        Function("max", call => { Arity(call, 2, 2); return Pick(call.Arg(0), call.Arg(1), max: true, call.Offset); });
        Function("min", call => { Arity(call, 2, 2); return Pick(call.Arg(0), call.Arg(1), max: false, call.Offset); });
        Method("max", call => MinMax(call, max: true));
        Method("min", call => MinMax(call, max: false));
        Function("range", call =>
        {
            Arity(call, 1, 3);
            var args = call.Args();
            if (args.Any(a => a is not long))
            {
                throw call.NoMatch();
            }

            var n = args.Cast<long>().ToArray();
            var (start, stop, step) = n.Length switch { 1 => (0L, n[0], 1L), 2 => (n[0], n[1], 1L), _ => (n[0], n[1], n[2]) };
            if (step == 0)
            {
                throw call.Fail("the step must not be zero");
            }

            var count = Math.Max(0, (stop - start + step + (step > 0 ? -1 : 1)) / step);
            if (count > call.Evaluator.Limits.MaxCollectionLength)
            {
                throw new ExpressionLimitException($"range() of {count} items is over the {call.Evaluator.Limits.MaxCollectionLength} limit");
            }

            return Enumerable.Range(0, (int)count).Select(i => (object?)(start + (i * step))).ToList();
        });
        Function("now", call =>
        {
            Arity(call, 0, 0);
            return call.Evaluator.Scope.Clock?.Invoke() ?? DateTimeOffset.UtcNow;
        });
        Function("coalesce", call =>
        {
            for (var i = 0; i < call.Count; i++)
            {
                if (call.Arg(i) is { } value)
                {
                    return value;
                }
            }

            return null;
        });
        Function("switch", call =>
        {
            if (call.Named.Count > 0)
            {
                throw call.NoMatch();
            }

            foreach (var arg in call.Positional)
            {
                if (arg is not YaqlMapping rule)
                {
                    throw call.NoMatch();
                }

                if (YaqlValues.Truthy(call.Evaluator.Evaluate(rule.Key, call.Scope)))
                {
                    return call.Evaluator.Evaluate(rule.Value, call.Scope);
                }
            }

            return null;
        });
        Function("with", call =>
        {
            var scope = new YaqlScope(call.Scope);
            for (var i = 0; i < call.Count; i++)
            {
                scope[(i + 1).ToString(CultureInfo.InvariantCulture)] = call.Arg(i);
            }

            return scope;
        });
        Function("selectCase", call =>
        {
            for (var i = 0; i < call.Count; i++)
            {
                if (YaqlValues.Truthy(call.Arg(i)))
                {
                    return (long)i;
                }
            }

            return (long)call.Count;
        });
        Function("selectAllCases", call => Enumerable.Range(0, call.Count).Where(i => YaqlValues.Truthy(call.Arg(i))).Select(i => (object?)(long)i).ToList());
        Function("examine", call => call.Args().Select(a => (object?)YaqlValues.Truthy(a)).ToList());
        Function("bitwiseAnd", call => Integers(call, 2, n => n[0] & n[1]));
        Function("bitwiseOr", call => Integers(call, 2, n => n[0] | n[1]));
        Function("bitwiseXor", call => Integers(call, 2, n => n[0] ^ n[1]));
        Function("bitwiseNot", call => Integers(call, 1, n => ~n[0]));
        Function("shiftBitsLeft", call => Integers(call, 2, n => n[1] is >= 0 and < 63 ? n[0] << (int)n[1] : throw call.Fail("the shift must be between 0 and 62")));
        Function("shiftBitsRight", call => Integers(call, 2, n => n[1] >= 0 ? n[0] >> (int)Math.Min(n[1], 63) : throw call.Fail("the shift must not be negative")));
        Function("isSet", call => Is(call, v => v is YaqlSet));
        Function("isTimespan", call => Is(call, v => v is TimeSpan));
        Function("let", call =>
        {
            var scope = new YaqlScope(call.Scope);
            for (var i = 0; i < call.Count; i++)
            {
                scope[(i + 1).ToString(CultureInfo.InvariantCulture)] = call.Arg(i);
            }

            foreach (var (name, node) in call.Named)
            {
                scope[name] = call.Evaluator.Evaluate(node, call.Scope);
            }

            return scope;
        });
        Method("assert", call =>
        {
            Arity(call, 1, 2);
            return YaqlValues.Truthy(call.Lambda(0)([call.Receiver])) ? call.Receiver : throw call.Fail(call.Arg(1, "Assertion failed") as string ?? "Assertion failed");
        });
        Function("regex", call =>
        {
            Arity(call, 1, 1);
            return Regex(call.Arg(0) as string ?? throw call.NoMatch(), call.Offset);
        });
        Function("escapeRegex", call => System.Text.RegularExpressions.Regex.Escape(Str(call, 0)));
    }

    // ---- strings ---------------------------------------------------------------------------------------------

    private static void RegisterStrings()
    {
        // Python's upper() maps ß to SS; .NET keeps it.
        Method("toUpper", call => { Arity(call, 0, 0); return ReceiverString(call).ToUpperInvariant().Replace("ß", "SS", StringComparison.Ordinal); });
        Method("toLower", call => { Arity(call, 0, 0); return ReceiverString(call).ToLowerInvariant(); });
        Method("trim", call => Trim(call, (s, c) => c is null ? s.Trim() : s.Trim(c)));
        Method("trimLeft", call => Trim(call, (s, c) => c is null ? s.TrimStart() : s.TrimStart(c)));
        Method("trimRight", call => Trim(call, (s, c) => c is null ? s.TrimEnd() : s.TrimEnd(c)));
        Method("startsWith", call =>
        {
            var s = ReceiverString(call);
            return call.Count > 0 ? call.Args().Any(p => s.StartsWith(p as string ?? throw call.NoMatch(), StringComparison.Ordinal)) : throw call.NoMatch();
        });
        Method("endsWith", call =>
        {
            var s = ReceiverString(call);
            return call.Count > 0 ? call.Args().Any(p => s.EndsWith(p as string ?? throw call.NoMatch(), StringComparison.Ordinal)) : throw call.NoMatch();
        });
        Method("substring", call =>
        {
            Arity(call, 1, 2);
            var s = ReceiverString(call);
            var start = call.Arg(0) as long? ?? throw call.NoMatch();
            var length = call.Arg(1, -1L) as long? ?? throw call.NoMatch();
            start = start < 0 ? Math.Max(0, s.Length + start) : Math.Min(start, s.Length);
            var end = length < 0 ? s.Length : Math.Min(s.Length, start + length);
            return end <= start ? "" : s[(int)start..(int)end];
        });
        Method("split", call =>
        {
            Arity(call, 0, 2);
            var s = ReceiverString(call);
            var separator = call.Arg(0, null);
            var max = call.Arg(1, -1L) as long? ?? throw call.NoMatch();
            if (separator is Regex regex)
            {
                return regex.Split(s, max < 0 ? 0 : (int)max + 1).Select(p => (object?)p).ToList();
            }

            return PySplit(s, separator as string ?? (separator is null ? null : throw call.NoMatch()), max, call);
        });
        Method("replace", call =>
        {
            if (call.Receiver is List<object?> items)
            {
                Arity(call, 2, 3);
                var list = new List<object?>(items);
                var at = call.Arg(0) as long? ?? throw call.NoMatch();
                var width = call.Arg(2, 1L) as long? ?? throw call.NoMatch();
                at = at < 0 ? list.Count + at : at;
                if (at >= 0 && at < list.Count)
                {
                    list.RemoveRange((int)at, (int)Math.Min(width < 0 ? list.Count : width, list.Count - at));
                    list.Insert((int)at, call.Arg(1));
                }

                return list;
            }

            var s = ReceiverString(call);
            if (call.Count == 1 && call.Arg(0) is OrderedDictionary<string, object?> map)
            {
                foreach (var (old, replacement) in map)
                {
                    s = call.Evaluator.CheckSize(s.Replace(old, replacement as string ?? YaqlValues.Str(replacement), StringComparison.Ordinal), call.Offset);
                }

                return s;
            }

            Arity(call, 2, 3);
            var (pattern, with) = (call.Arg(0), call.Arg(1) as string ?? throw call.NoMatch());
            var count = call.Arg(2, -1L) as long? ?? throw call.NoMatch();
            if (pattern is Regex regex)
            {
                return regex.Replace(s, PythonRegex.Replacement(with), count < 0 ? -1 : (int)count);
            }

            var old2 = pattern as string ?? throw call.NoMatch();
            return count < 0 ? ReplaceAll(s, old2, with) : ReplaceCount(s, old2, with, count);
        });
        Method("indexOf", call =>
        {
            if (call.Receiver is string s)
            {
                Arity(call, 1, 2);
                var sub = call.Arg(0) as string ?? throw call.NoMatch();
                var start = call.Arg(1, 0L) as long? ?? throw call.NoMatch();
                start = start < 0 ? Math.Max(0, s.Length + start) : start;
                return start > s.Length ? -1L : (long)s.IndexOf(sub, (int)start, StringComparison.Ordinal);
            }

            Arity(call, 1, 1);
            var list = ReceiverList(call);
            var item = call.Arg(0);
            return (long)list.FindIndex(x => YaqlValues.Equal(x, item));
        });
        Method("lastIndexOf", call =>
        {
            if (call.Receiver is string s)
            {
                Arity(call, 1, 1);
                return (long)s.LastIndexOf(call.Arg(0) as string ?? throw call.NoMatch(), StringComparison.Ordinal);
            }

            Arity(call, 1, 1);
            var item = call.Arg(0);
            return (long)ReceiverList(call).FindLastIndex(x => YaqlValues.Equal(x, item));
        });
        Method("join", call =>
        {
            Arity(call, 1, 1);
            var (items, separator) = call.Receiver is string sep && call.Arg(0) is List<object?> l1
                ? (l1, sep)
                : (ReceiverList(call), call.Arg(0) as string ?? throw call.NoMatch());
            var texts = items.Select(i => i as string ?? YaqlValues.Str(i)).ToList();
            call.Evaluator.Reserve((texts.Sum(t => (long)t.Length) + (long)separator.Length * texts.Count) / 10, call.Offset);
            return call.Evaluator.CheckSize(string.Join(separator, texts), call.Offset);
        });
        Extension("format", call =>
        {
            var format = ReceiverString(call);
            return PyFormat(format, call.Args(), call.Named.ToDictionary(p => p.Key, p => call.Evaluator.Evaluate(p.Value, call.Scope)), call);
        });
        Method("concat", call => ConcatLists(call));
        Function("concat", call =>
        {
            var args = call.Args();
            if (args.Count > 0 && args.All(a => a is string))
            {
                return call.Evaluator.CheckSize(string.Concat(args.Cast<string>()), call.Offset);
            }

            call.ShiftReceiver();
            return ConcatLists(call);
        });
        Method("rightSplit", call =>
        {
            Arity(call, 0, 2);
            var s = ReceiverString(call);
            var separator = call.Arg(0, null) as string;
            var max = call.Arg(1, -1L) as long? ?? throw call.NoMatch();
            if (separator is null || max < 0)
            {
                return PySplit(s, separator, -1, call);
            }

            var parts = new List<object?>();
            var end = s.Length;
            while (parts.Count < max)
            {
                var at = s.LastIndexOf(separator, Math.Max(0, end - 1), StringComparison.Ordinal);
                if (at < 0 || end == 0)
                {
                    break;
                }

                parts.Insert(0, s[(at + separator.Length)..end]);
                end = at;
            }

            parts.Insert(0, s[..end]);
            return parts;
        });
        Extension("norm", call => call.Receiver is null ? null : ReceiverString(call).Trim());
        Method("repeat", call =>
        {
            Arity(call, 1, 1);
            var n = Count(call);
            return call.Evaluator.CheckSize(Enumerable.Repeat(call.Receiver, Math.Min(n, call.Evaluator.Limits.MaxCollectionLength + 1)).ToList(), call.Offset);
        });
        Method("toCharArray", call => ReceiverString(call).Select(c => (object?)c.ToString()).ToList());
        Method("matches", call =>
        {
            Arity(call, 1, 1);
            return call.Receiver switch
            {
                Regex r => r.IsMatch(call.Arg(0) as string ?? throw call.NoMatch()),
                string s => Regex(call.Arg(0) as string ?? throw call.NoMatch(), call.Offset).IsMatch(s),
                _ => throw call.NoMatch(),
            };
        });
        Method("search", call =>
        {
            Arity(call, 1, 1);
            var regex = call.Receiver as Regex ?? throw call.NoMatch();
            var m = regex.Match(call.Arg(0) as string ?? throw call.NoMatch());
            return m.Success ? m.Value : null;
        });
        Method("searchAll", call =>
        {
            Arity(call, 1, 1);
            var regex = call.Receiver as Regex ?? throw call.NoMatch();
            return regex.Matches(call.Arg(0) as string ?? throw call.NoMatch()).Select(m => (object?)m.Value).ToList();
        });
        Extension("len", call =>
        {
            Arity(call, 0, 0);
            return call.Receiver switch
            {
                string s => (long)s.Length,
                List<object?> l => (long)l.Count,
                OrderedDictionary<string, object?> d => (long)d.Count,
                _ => throw call.NoMatch(),
            };
        });
        Function("hex", call => call.Arg(0) is long l ? (l < 0 ? "-0x" + (-l).ToString("x", CultureInfo.InvariantCulture) : "0x" + l.ToString("x", CultureInfo.InvariantCulture)) : throw call.NoMatch());
    }

    // ---- collections -----------------------------------------------------------------------------------------

    private static void RegisterCollections()
    {
        Function("list", call => call.Args());
        Method("toList", call => { Arity(call, 0, 0); return new List<object?>(ReceiverList(call)); });
        Function("dict", call =>
        {
            var result = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
            if (call.Count == 1 && call.Named.Count == 0 && call.Arg(0) is List<object?> pairs)
            {
                foreach (var pair in pairs)
                {
                    if (pair is not List<object?> { Count: 2 } kv)
                    {
                        throw call.Fail("takes a list of [key, value] pairs");
                    }

                    result[YaqlValues.Key(kv[0], call.Offset)] = kv[1];
                }

                return result;
            }

            foreach (var arg in call.Positional)
            {
                if (arg is not YaqlMapping rule)
                {
                    throw call.NoMatch();
                }

                result[YaqlValues.Key(call.Evaluator.Evaluate(rule.Key, call.Scope), rule.Offset)] = call.Evaluator.Evaluate(rule.Value, call.Scope);
            }

            foreach (var (name, node) in call.Named)
            {
                result[name] = call.Evaluator.Evaluate(node, call.Scope);
            }

            return result;
        });
        Method("toDict", call =>
        {
            Arity(call, 1, 2);
            var list = ReceiverList(call);
            var key = call.Lambda(0);
            var value = call.Count > 1 ? call.Lambda(1) : (Func<object?[], object?>)(a => a[0]);
            var result = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
            foreach (var item in list)
            {
                result[YaqlValues.Key(key([item]), call.Offset)] = value([item]);
            }

            return result;
        });
        Extension("set", call =>
        {
            if (call.Receiver is OrderedDictionary<string, object?> dict)
            {
                var updated = new OrderedDictionary<string, object?>(dict, StringComparer.Ordinal);
                if (call.Count == 2 && call.Positional[0] is not YaqlMapping)
                {
                    updated[YaqlValues.Key(call.Arg(0), call.Offset)] = call.Arg(1);
                    return updated;
                }

                foreach (var rule in call.Positional)
                {
                    var mapping = rule as YaqlMapping ?? throw call.NoMatch();
                    updated[YaqlValues.Key(call.Evaluator.Evaluate(mapping.Key, call.Scope), mapping.Offset)] = call.Evaluator.Evaluate(mapping.Value, call.Scope);
                }

                foreach (var (name, node) in call.Named)
                {
                    updated[name] = call.Evaluator.Evaluate(node, call.Scope);
                }

                return updated;
            }

            var items = call.Receiver is List<object?> l && call.Count == 0 ? l : new List<object?> { call.Receiver }.Concat(call.Args()).ToList();
            return Distinct(items);
        });
        Method("toSet", call => Distinct(ReceiverList(call)));
        Method("add", call => Distinct([.. call.Receiver as YaqlSet ?? throw call.NoMatch(), .. call.Args()]));
        Method("keys", call => { Arity(call, 0, 0); return ReceiverDict(call).Keys.Select(k => (object?)k).ToList(); });
        Method("values", call => { Arity(call, 0, 0); return ReceiverDict(call).Values.ToList(); });
        Method("items", call => { Arity(call, 0, 0); return ReceiverDict(call).Select(p => (object?)new List<object?> { p.Key, p.Value }).ToList(); });
        Method("get", call =>
        {
            Arity(call, 1, 2);
            var key = YaqlValues.Key(call.Arg(0), call.Offset);
            return ReceiverDict(call).TryGetValue(key, out var value) ? value : call.Arg(1, null);
        });
        Method("containsKey", call => { Arity(call, 1, 1); return ReceiverDict(call).ContainsKey(YaqlValues.Key(call.Arg(0), call.Offset)); });
        Method("containsValue", call => { Arity(call, 1, 1); var v = call.Arg(0); return ReceiverDict(call).Values.Any(x => YaqlValues.Equal(x, v)); });
        Method("contains", call => { Arity(call, 1, 1); var v = call.Arg(0); return ReceiverList(call).Any(x => YaqlValues.Equal(x, v)); });
        Method("mergeWith", call =>
        {
            Arity(call, 1, 1);
            var result = new OrderedDictionary<string, object?>(ReceiverDict(call), StringComparer.Ordinal);
            foreach (var (k, v) in call.Arg(0) as OrderedDictionary<string, object?> ?? throw call.NoMatch())
            {
                result[k] = result.TryGetValue(k, out var old) && old is OrderedDictionary<string, object?> a && v is OrderedDictionary<string, object?> b ? Merge(a, b) : v;
            }

            return result;
        });
        Method("delete", call =>
        {
            if (call.Receiver is OrderedDictionary<string, object?> dict)
            {
                var keys = call.Args().Select(k => YaqlValues.Key(k, call.Offset)).ToHashSet();
                var kept = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in dict.Where(p => !keys.Contains(p.Key)))
                {
                    kept[k] = v;
                }

                return kept;
            }

            Arity(call, 1, 2);
            var list = new List<object?>(ReceiverList(call));
            var at = call.Arg(0) as long? ?? throw call.NoMatch();
            var count = call.Arg(1, 1L) as long? ?? throw call.NoMatch();
            if (at >= 0 && at < list.Count)
            {
                list.RemoveRange((int)at, (int)Math.Min(count < 0 ? list.Count : count, list.Count - at));
            }

            return list;
        });
        Method("insert", call =>
        {
            Arity(call, 2, 2);
            var list = new List<object?>(ReceiverList(call));
            var at = call.Arg(0) as long? ?? throw call.NoMatch();
            list.Insert((int)Math.Clamp(at < 0 ? list.Count + at : at, 0, list.Count), call.Arg(1));
            return list;
        });
        Method("append", call => new List<object?>(ReceiverList(call)).Concat(call.Args()).ToList());
        Extension("isEmpty", call => call.Receiver switch
        {
            null => true,
            string s => s.Trim().Length == 0,
            _ => throw call.NoMatch(),
        });
        Method("flatten", call =>
        {
            var result = new List<object?>();
            void Add(object? v, int depth)
            {
                if (depth > call.Evaluator.Limits.MaxDepth * 4)
                {
                    throw new ExpressionLimitException($"a list at character {call.Offset + 1} is nested deeper than {call.Evaluator.Limits.MaxDepth * 4} levels");
                }

                if (v is List<object?> inner)
                {
                    inner.ForEach(i => Add(i, depth + 1));
                }
                else
                {
                    // Counted as it grows: a list repeated many times is small until flattened.
                    call.Evaluator.Reserve(result.Count + 1, call.Offset);
                    result.Add(v);
                }
            }

            ReceiverList(call).ForEach(v => Add(v, 0));
            return call.Evaluator.CheckSize(result, call.Offset);
        });
        Method("reverse", call => { var l = new List<object?>(ReceiverList(call)); l.Reverse(); return l; });
        Method("union", call => SetOperation(call, (a, b) => a.Concat(b)));
        Method("intersect", call => SetOperation(call, (a, b) => a.Where(x => b.Any(y => YaqlValues.Equal(x, y)))));
        Method("difference", call => SetOperation(call, (a, b) => a.Where(x => !b.Any(y => YaqlValues.Equal(x, y)))));
        Method("symmetricDifference", call => SetOperation(call, (a, b) => a.Where(x => !b.Any(y => YaqlValues.Equal(x, y))).Concat(b.Where(y => !a.Any(x => YaqlValues.Equal(x, y))))));
    }

    // ---- queries ---------------------------------------------------------------------------------------------

    private static void RegisterQueries()
    {
        Method("select", call => { Arity(call, 1, 1); var f = call.Lambda(0); return ReceiverList(call).Select(x => f([x])).ToList(); });
        Method("where", call => { Arity(call, 1, 1); var f = call.Lambda(0); return ReceiverList(call).Where(x => YaqlValues.Truthy(f([x]))).ToList(); });
        Method("filter", call => { Arity(call, 1, 1); var f = call.Lambda(0); return ReceiverList(call).Where(x => YaqlValues.Truthy(f([x]))).ToList(); });
        Method("selectMany", call =>
        {
            Arity(call, 1, 1);
            var f = call.Lambda(0);
            var result = new List<object?>();
            foreach (var x in ReceiverList(call))
            {
                var items = f([x]) as List<object?> ?? throw call.Fail("the selector must give a list");
                call.Evaluator.Reserve(result.Count + (long)items.Count, call.Offset);
                result.AddRange(items);
            }

            return call.Evaluator.CheckSize(result, call.Offset);
        });
        Method("count", call => { Arity(call, 0, 0); return (long)ReceiverList(call).Count; });
        Method("first", call =>
        {
            Arity(call, 0, 1);
            var list = ReceiverList(call);
            return list.Count > 0 ? list[0] : call.Count > 0 ? call.Arg(0) : throw call.Fail("the collection is empty");
        });
        Method("last", call =>
        {
            Arity(call, 0, 1);
            var list = ReceiverList(call);
            return list.Count > 0 ? list[^1] : call.Count > 0 ? call.Arg(0) : throw call.Fail("the collection is empty");
        });
        Method("single", call =>
        {
            Arity(call, 0, 0);
            var list = ReceiverList(call);
            return list.Count == 1 ? list[0] : throw call.Fail($"the collection has {list.Count} items, not one");
        });
        Method("skip", call => { Arity(call, 1, 1); var n = Count(call); return ReceiverList(call).Skip(n).ToList(); });
        Method("take", call => { Arity(call, 1, 1); var n = Count(call); return ReceiverList(call).Take(n).ToList(); });
        Method("limit", call => { Arity(call, 1, 1); var n = Count(call); return ReceiverList(call).Take(n).ToList(); });
        Method("skipWhile", call => { Arity(call, 1, 1); var f = call.Lambda(0); return ReceiverList(call).SkipWhile(x => YaqlValues.Truthy(f([x]))).ToList(); });
        Method("takeWhile", call => { Arity(call, 1, 1); var f = call.Lambda(0); return ReceiverList(call).TakeWhile(x => YaqlValues.Truthy(f([x]))).ToList(); });
        Method("sum", call =>
        {
            Arity(call, 0, 1);
            var list = ReceiverList(call);
            var (total, rest) = call.Count > 0 ? (call.Arg(0), list) : list.Count > 0 ? (list[0], list.Skip(1).ToList()) : throw call.Fail("the collection is empty");
            foreach (var item in rest)
            {
                total = YaqlOperators.Apply("+", total, item, call.Offset, call.Evaluator);
            }

            return total;
        });
        Extension("any", call =>
        {
            Arity(call, 0, 1);
            var list = ReceiverList(call);
            if (call.Count == 0)
            {
                return list.Count > 0;
            }

            var f = call.Lambda(0);
            return list.Any(x => YaqlValues.Truthy(f([x])));
        });
        Extension("all", call =>
        {
            Arity(call, 0, 1);
            var f = call.Count == 0 ? (Func<object?[], object?>)(a => a[0]) : call.Lambda(0);
            return ReceiverList(call).All(x => YaqlValues.Truthy(f([x])));
        });
        Extension("distinct", call =>
        {
            Arity(call, 0, 1);
            var list = ReceiverList(call);
            if (call.Count == 0)
            {
                return new List<object?>(Distinct(list));
            }

            var f = call.Lambda(0);
            var seen = new List<object?>();
            var result = new List<object?>();
            foreach (var item in list)
            {
                var key = f([item]);
                if (!seen.Any(s => YaqlValues.Equal(s, key)))
                {
                    seen.Add(key);
                    result.Add(item);
                }
            }

            return result;
        });
        Method("orderBy", call => Order(call, descending: false, then: false));
        Method("orderByDescending", call => Order(call, descending: true, then: false));
        Method("thenBy", call => Order(call, descending: false, then: true));
        Method("thenByDescending", call => Order(call, descending: true, then: true));
        Method("lastIndexWhere", call => { Arity(call, 1, 1); var f = call.Lambda(0); return (long)ReceiverList(call).FindLastIndex(x => YaqlValues.Truthy(f([x]))); });
        Method("zipLongest", call =>
        {
            var lists = new List<List<object?>> { ReceiverList(call) };
            lists.AddRange(call.Args().Select(a => a as List<object?> ?? throw call.NoMatch()));
            var pad = call.NamedArg("default");
            var length = lists.Max(l => l.Count);
            return Enumerable.Range(0, length).Select(i => (object?)lists.Select(l => i < l.Count ? l[i] : pad).ToList()).ToList();
        });
        Method("splitAt", call =>
        {
            Arity(call, 1, 1);
            var list = ReceiverList(call);
            var n = Math.Min(Count(call), list.Count);
            return new List<object?> { list.Take(n).ToList(), list.Skip(n).ToList() };
        });
        Method("slice", call =>
        {
            Arity(call, 1, 1);
            var n = call.Arg(0) as long? ?? throw call.NoMatch();
            if (n <= 0)
            {
                return new List<object?>();
            }

            return ReceiverList(call).Chunk((int)Math.Min(n, int.MaxValue)).Select(c => (object?)c.ToList()).ToList();
        });
        Method("splitWhere", call =>
        {
            Arity(call, 1, 1);
            var f = call.Lambda(0);
            var parts = new List<object?>();
            var current = new List<object?>();
            foreach (var item in ReceiverList(call))
            {
                if (YaqlValues.Truthy(f([item])))
                {
                    parts.Add(current);
                    current = [];
                }
                else
                {
                    current.Add(item);
                }
            }

            parts.Add(current);
            return parts;
        });
        Method("accumulate", call =>
        {
            Arity(call, 1, 2);
            var f = call.Lambda(0);
            var list = ReceiverList(call);
            var result = new List<object?>();
            var (accumulator, rest) = call.Count > 1 ? (call.Arg(1), list) : list.Count > 0 ? (list[0], list.Skip(1).ToList()) : throw call.Fail("the collection is empty and there is no seed");
            result.Add(accumulator);

            foreach (var item in rest)
            {
                accumulator = f([accumulator, item]);
                result.Add(accumulator);
            }

            return result;
        });
        Method("insertMany", call =>
        {
            Arity(call, 2, 2);
            var list = new List<object?>(ReceiverList(call));
            var at = call.Arg(0) as long? ?? throw call.NoMatch();
            var items = call.Arg(1) as List<object?> ?? throw call.NoMatch();
            list.InsertRange((int)Math.Clamp(at < 0 ? list.Count + at : at, 0, list.Count), items);
            return list;
        });
        Method("memorize", call => { Arity(call, 0, 0); return ReceiverList(call); });
        Method("unpack", call =>
        {
            var list = ReceiverList(call);
            var names = call.Args().Select(a => a as string ?? throw call.NoMatch()).ToList();
            if (names.Count > 0 && names.Count != list.Count)
            {
                throw call.Fail($"cannot unpack {list.Count} items into {names.Count} names");
            }

            var scope = new YaqlScope(call.Scope);
            for (var i = 0; i < list.Count; i++)
            {
                scope[names.Count > 0 ? names[i] : (i + 1).ToString(CultureInfo.InvariantCulture)] = list[i];
            }

            return scope;
        });
        Method("switchCase", call =>
        {
            var index = call.Receiver as long? ?? throw call.NoMatch();
            return call.Count == 0 ? null : index >= 0 && index < call.Count ? call.Arg((int)index) : call.Arg(call.Count - 1);
        });
        Method("indexWhere", call => { Arity(call, 1, 1); var f = call.Lambda(0); return (long)ReceiverList(call).FindIndex(x => YaqlValues.Truthy(f([x]))); });
        Method("groupBy", call =>
        {
            Arity(call, 1, 3);
            var key = call.Lambda(0);
            var value = call.Count > 1 ? call.Lambda(1) : call.NamedLambda("valueSelector") ?? (a => a[0]);
            var aggregate = call.Count > 2 ? call.Lambda(2) : call.NamedLambda("aggregator");
            var groups = new List<(object? Key, List<object?> Items)>();
            foreach (var item in ReceiverList(call))
            {
                var k = key([item]);
                var index = groups.FindIndex(g => YaqlValues.Equal(g.Key, k));
                if (index < 0)
                {
                    groups.Add((k, []));
                    index = groups.Count - 1;
                }

                groups[index].Items.Add(value([item]));
            }

            return groups.Select(g => (object?)new List<object?> { g.Key, aggregate is null ? g.Items : aggregate([g.Items]) }).ToList();
        });
        Method("aggregate", call =>
        {
            Arity(call, 1, 2);
            var f = call.Lambda(0);
            var list = ReceiverList(call);
            var (accumulator, rest) = call.Count > 1 ? (call.Arg(1), list) : list.Count > 0 ? (list[0], list.Skip(1).ToList()) : throw call.Fail("the collection is empty and there is no seed");
            foreach (var item in rest)
            {
                accumulator = f([accumulator, item]);
            }

            return accumulator;
        });
        Methods["reduce"] = Methods["aggregate"];
        Method("enumerate", call =>
        {
            var start = call.Arg(0, 0L) as long? ?? throw call.NoMatch();
            return ReceiverList(call).Select((x, i) => (object?)new List<object?> { start + i, x }).ToList();
        });
        Method("zip", call =>
        {
            var lists = new List<List<object?>> { ReceiverList(call) };
            lists.AddRange(call.Args().Select(a => a as List<object?> ?? throw call.NoMatch()));
            var length = lists.Min(l => l.Count);
            return Enumerable.Range(0, length).Select(i => (object?)lists.Select(l => l[i]).ToList()).ToList();
        });
        Method("defaultIfEmpty", call =>
        {
            Arity(call, 1, 1);
            var fallback = call.Arg(0) as List<object?> ?? throw call.NoMatch();
            var l = ReceiverList(call);
            return l.Count > 0 ? l : fallback;
        });
    }

    // ---- helpers ---------------------------------------------------------------------------------------------

    private static bool Arity(YaqlInvocation call, int min, int max) =>
        call.Count < min || call.Count > max ? throw call.NoMatch() : true;

    private static int Count(YaqlInvocation call) => call.Arg(0) switch
    {
        long n when n >= 0 => (int)Math.Min(n, int.MaxValue),
        long n => throw call.Fail($"the count must not be negative, not {n}"),
        _ => throw call.NoMatch(),
    };

    private static object Integers(YaqlInvocation call, int count, Func<long[], long> operation)
    {
        Arity(call, count, count);
        var args = call.Args();
        return args.All(a => a is long) ? operation([.. args.Cast<long>()]) : throw call.NoMatch();
    }

    private static bool Is(YaqlInvocation call, Func<object?, bool> test)
    {
        Arity(call, 1, 1);
        return test(call.Arg(0));
    }

    private static string Str(YaqlInvocation call, int i) => call.Count > i && call.Arg(i) is string s ? s : throw call.NoMatch();

    private static string ReceiverString(YaqlInvocation call) => call.Receiver as string ?? throw call.NoMatch();

    private static List<object?> ReceiverList(YaqlInvocation call) => call.Receiver as List<object?> ?? throw call.NoMatch();

    private static OrderedDictionary<string, object?> ReceiverDict(YaqlInvocation call) => call.Receiver as OrderedDictionary<string, object?> ?? throw call.NoMatch();

    private static string Trim(YaqlInvocation call, Func<string, char[]?, string> trim)
    {
        Arity(call, 0, 1);
        var chars = call.Count == 0 ? null : call.Arg(0) switch
        {
            null => null,
            string s => s.ToCharArray(),
            _ => throw call.NoMatch(),
        };
        return trim(ReceiverString(call), chars);
    }

    private static object? MinMax(YaqlInvocation call, bool max)
    {
        Arity(call, 0, 1);
        var list = ReceiverList(call);
        if (call.Count == 1)
        {
            return list.Aggregate(call.Arg(0), (a, b) => Pick(a, b, max, call.Offset));
        }

        return list.Count == 0 ? throw call.Fail("the collection is empty") : list.Aggregate((a, b) => Pick(a, b, max, call.Offset));
    }

    private static object? Pick(object? a, object? b, bool max, int offset) =>
        YaqlValues.Compare(max ? ">" : "<", b, a, offset) ? b : a;

    private static YaqlOrdered Order(YaqlInvocation call, bool descending, bool then)
    {
        Arity(call, 1, 1);
        var previous = then ? call.Receiver as YaqlOrdered ?? throw call.NoMatch() : null;
        var source = previous?.Source ?? ReceiverList(call);
        var keys = new List<(Func<object?[], object?> Key, bool Descending)>(previous?.Keys ?? []) { (call.Lambda(0), descending) };
        var keyed = source.Select(x => (Keys: keys.Select(k => k.Key([x])).ToArray(), Item: x)).ToList();
        int Compare(object?[] a, object?[] b)
        {
            for (var i = 0; i < keys.Count; i++)
            {
                var c = YaqlValues.Equal(a[i], b[i]) ? 0 : YaqlValues.Compare("<", a[i], b[i], call.Offset) ? -1 : 1;
                if (c != 0)
                {
                    return keys[i].Descending ? -c : c;
                }
            }

            return 0;
        }

        try
        {
            return new YaqlOrdered(keyed.OrderBy(k => k.Keys, Comparer<object?[]>.Create(Compare)).Select(k => k.Item), source, keys);
        }
        catch (InvalidOperationException ex) when (ex.InnerException is YaqlException inner)
        {
            throw inner;
        }
    }

    private static List<object?> ConcatLists(YaqlInvocation call)
    {
        var result = new List<object?>(ReceiverList(call));
        foreach (var a in call.Args())
        {
            result.AddRange(a as List<object?> ?? throw call.NoMatch());
        }

        return call.Evaluator.CheckSize(result, call.Offset);
    }

    private static YaqlSet SetOperation(YaqlInvocation call, Func<List<object?>, List<object?>, IEnumerable<object?>> operation)
    {
        Arity(call, 1, 1);
        var (a, b) = (call.Receiver as YaqlSet ?? throw call.NoMatch(), call.Arg(0) as YaqlSet ?? throw call.NoMatch());
        return Distinct(operation(a, b).ToList());
    }

    private static YaqlSet Distinct(List<object?> items)
    {
        var result = new YaqlSet();
        foreach (var item in items)
        {
            if (!result.Any(r => YaqlValues.Equal(r, item)))
            {
                result.Add(item);
            }
        }

        return result;
    }

    private static OrderedDictionary<string, object?> Merge(OrderedDictionary<string, object?> a, OrderedDictionary<string, object?> b)
    {
        var result = new OrderedDictionary<string, object?>(a, StringComparer.Ordinal);
        foreach (var (k, v) in b)
        {
            result[k] = result.TryGetValue(k, out var old) && old is OrderedDictionary<string, object?> x && v is OrderedDictionary<string, object?> y ? Merge(x, y) : v;
        }

        return result;
    }

    private static double? ParseFloat(string s)
    {
        var t = s.Trim().ToLowerInvariant();
        return t switch
        {
            "inf" or "+inf" or "infinity" => double.PositiveInfinity,
            "-inf" or "-infinity" => double.NegativeInfinity,
            "nan" => double.NaN,
            _ => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null,
        };
    }

    private static List<object?> PySplit(string s, string? separator, long max, YaqlInvocation call)
    {
        if (separator is null)
        {
            var parts = new List<object?>();
            var i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i]))
                {
                    i++;
                }

                if (i >= s.Length)
                {
                    break;
                }

                if (max >= 0 && parts.Count == max)
                {
                    parts.Add(s[i..].TrimEnd());
                    break;
                }

                var start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i]))
                {
                    i++;
                }

                parts.Add(s[start..i]);
            }

            return parts;
        }

        if (separator.Length == 0)
        {
            throw call.Fail("empty separator");
        }

        var pieces = max < 0 ? s.Split(separator) : s.Split(separator, (int)Math.Min(max + 1, int.MaxValue));
        return pieces.Select(p => (object?)p).ToList();
    }

    private static string ReplaceAll(string s, string old, string with)
    {
        if (old.Length > 0)
        {
            return s.Replace(old, with, StringComparison.Ordinal);
        }

        // Python inserts the replacement between every character and at both ends.
        var sb = new StringBuilder(with);
        foreach (var c in s)
        {
            sb.Append(c).Append(with);
        }

        return sb.ToString();
    }

    private static string ReplaceCount(string s, string old, string with, long count)
    {
        var sb = new StringBuilder();
        var at = 0;
        for (var n = 0; n < count && old.Length > 0; n++)
        {
            var i = s.IndexOf(old, at, StringComparison.Ordinal);
            if (i < 0)
            {
                break;
            }

            sb.Append(s, at, i - at).Append(with);
            at = i + old.Length;
        }

        return sb.Append(s, at, s.Length - at).ToString();
    }

    // Python's str.format for the common fields: {}, {0}, {name}, with an optional :spec for numbers.
    private static string PyFormat(string format, List<object?> args, Dictionary<string, object?> named, YaqlInvocation call)
    {
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c == '{' && i + 1 < format.Length && format[i + 1] == '{')
            {
                sb.Append('{');
                i++;
                continue;
            }

            if (c == '}' && i + 1 < format.Length && format[i + 1] == '}')
            {
                sb.Append('}');
                i++;
                continue;
            }

            if (c != '{')
            {
                sb.Append(c);
                continue;
            }

            var close = format.IndexOf('}', i);
            if (close < 0)
            {
                throw call.Fail("a '{' in the format is never closed");
            }

            var field = format[(i + 1)..close];
            var colon = field.IndexOf(':', StringComparison.Ordinal);
            var name = colon < 0 ? field : field[..colon];
            var spec = colon < 0 ? "" : field[(colon + 1)..];
            object? value;
            if (name.Length == 0)
            {
                value = auto < args.Count ? args[auto++] : throw call.Fail("the format has more fields than arguments");
            }
            else if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            {
                value = index < args.Count ? args[index] : throw call.Fail($"the format names argument {index}, which is not given");
            }
            else
            {
                value = named.TryGetValue(name, out var v) ? v : throw call.Fail($"the format names '{name}', which is not given");
            }

            sb.Append(FormatValue(value, spec, call));
            i = close;
        }

        return sb.ToString();
    }

    private static string FormatValue(object? value, string spec, YaqlInvocation call)
    {
        if (spec.Length == 0)
        {
            return value switch
            {
                null => "None",
                bool b => b ? "True" : "False",
                string s => s,
                List<object?> or OrderedDictionary<string, object?> => YaqlValues.Repr(value),
                _ => YaqlValues.Str(value),
            };
        }

        var m = System.Text.RegularExpressions.Regex.Match(spec, @"^(?:(?<fill>.)?(?<align>[<>^]))?(?<zero>0)?(?<width>\d+)?(?:\.(?<precision>\d+))?(?<type>[dfs])?$");
        if (!m.Success)
        {
            throw call.Fail($"the format spec ':{spec}' is not supported");
        }

        var text = (m.Groups["type"].Value, value) switch
        {
            ("f", long or double) => Py.ToDouble(value).ToString("F" + (m.Groups["precision"].Success ? m.Groups["precision"].Value : "6"), CultureInfo.InvariantCulture),
            ("d", long l) => l.ToString(CultureInfo.InvariantCulture),
            ("", double d) when m.Groups["precision"].Success => d.ToString("F" + m.Groups["precision"].Value, CultureInfo.InvariantCulture),
            _ => FormatValue(value, "", call),
        };
        var width = m.Groups["width"].Success ? int.Parse(m.Groups["width"].Value, CultureInfo.InvariantCulture) : 0;
        var fill = m.Groups["fill"].Success ? m.Groups["fill"].Value[0] : m.Groups["zero"].Success ? '0' : ' ';
        var align = m.Groups["align"].Success ? m.Groups["align"].Value : value is string ? "<" : ">";
        return align switch
        {
            "<" => text.PadRight(width, fill),
            "^" => text.PadLeft(text.Length + ((width - text.Length) / 2), fill).PadRight(width, fill),
            _ => text.PadLeft(width, fill),
        };
    }
}

/// <summary>A YAQL set (from <c>set()</c> or <c>toSet()</c>): a list of distinct items that the set operations accept.</summary>
internal sealed class YaqlSet : List<object?>;

/// <summary>
/// The result of a lazy query (<c>select</c>, <c>where</c>, <c>orderBy</c>, <c>keys</c>, …). In YAQL it is an
/// iterator, so it cannot be indexed and equals nothing but itself; <c>toList()</c> makes it a list.
/// </summary>
internal class YaqlLazy : List<object?>
{
    public YaqlLazy()
    {
    }

    public YaqlLazy(IEnumerable<object?> items)
        : base(items)
    {
    }
}

/// <summary>The result of <c>orderBy</c>: remembers its source and keys so that <c>thenBy</c> can refine the order.</summary>
internal sealed class YaqlOrdered(IEnumerable<object?> items, List<object?> source, List<(Func<object?[], object?> Key, bool Descending)> keys) : YaqlLazy(items)
{
    public List<object?> Source { get; } = source;

    public List<(Func<object?[], object?> Key, bool Descending)> Keys { get; } = keys;
}
