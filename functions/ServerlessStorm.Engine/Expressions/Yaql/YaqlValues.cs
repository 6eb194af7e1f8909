using System.Globalization;
using System.Text;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Expressions.Yaql;

/// <summary>YAQL's view of values: which are numbers (a bool is not), how they print, compare and become map keys.</summary>
internal static class YaqlValues
{
    public static bool IsNumber(object? value) => value is long or double;

    public static bool Truthy(object? value) => value is YaqlScope || value is DateTimeOffset || Py.Truthy(value);

    public static string TypeName(object? value) => value switch
    {
        null => "null",
        bool => "boolean",
        long => "integer",
        double => "float",
        string => "string",
        List<object?> => "list",
        OrderedDictionary<string, object?> => "dict",
        DateTimeOffset => "datetime",
        TimeSpan => "timespan",
        YaqlScope => "context",
        System.Text.RegularExpressions.Regex => "regex",
        _ => value.GetType().Name,
    };

    /// <summary>A map key: strings as they are, other values as YAQL prints them.</summary>
    public static string Key(object? key, int offset) => key switch
    {
        string s => s,
        null => "null",
        bool b => b ? "true" : "false",
        long or double => Str(key),
        _ => throw YaqlEvaluator.Fail($"a {TypeName(key)} cannot be a map key", offset),
    };

    /// <summary>YAQL's <c>str()</c>: null, true and false in YAQL's spelling; collections as Python prints them.</summary>
    public static string Str(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Py.FloatRepr(d),
        string s => s,
        DateTimeOffset t => PythonDateTime(t),
        TimeSpan s => PythonTimeSpan(s),
        System.Text.RegularExpressions.Regex r => $"re.compile({Py.Repr(r.ToString())})",
        YaqlScope => "<context>",
        _ => Repr(value),
    };

    /// <summary>Python's repr of the value as YAQL holds it (lists are tuples there).</summary>
    public static string Repr(object? value)
    {
        switch (value)
        {
            case null:
                return "None";
            case bool b:
                return b ? "True" : "False";
            case string s:
                return Py.Repr(s);
            case List<object?> list:
                var sb = new StringBuilder("(");
                sb.AppendJoin(", ", list.Select(Repr));
                return sb.Append(list.Count == 1 ? ",)" : ")").ToString();
            case OrderedDictionary<string, object?> dict:
                return "{" + string.Join(", ", dict.Select(p => Py.Repr(p.Key) + ": " + Repr(p.Value))) + "}";
            case DateTimeOffset or TimeSpan or System.Text.RegularExpressions.Regex or YaqlScope:
                return Str(value);
            default:
                return value.ToString() ?? "";
        }
    }

    /// <summary>Python's <c>==</c> (1 = 1.0 and true = 1 hold).</summary>
    public static bool Equal(object? a, object? b) => (a, b) switch
    {
        (YaqlLazy, _) or (_, YaqlLazy) => ReferenceEquals(a, b),
        (YaqlSet x, YaqlSet y) => x.Count == y.Count && x.All(i => y.Any(j => Equal(i, j))),
        (YaqlSet, _) or (_, YaqlSet) => false,
        _ => Py.Equal(a, b),
    };

    /// <summary>Ordering as YAQL defines it: numbers with numbers, strings with strings, datetimes, and null below anything.</summary>
    public static bool Compare(string op, object? a, object? b, int offset)
    {
        int c;
        if (a is null || b is null)
        {
            c = a is null && b is null ? 0 : a is null ? -1 : 1;
        }
        else if (IsNumber(a) && IsNumber(b))
        {
            c = a is double || b is double ? Py.ToDouble(a).CompareTo(Py.ToDouble(b)) : ((long)a).CompareTo((long)b);
        }
        else if (a is string x && b is string y)
        {
            c = string.CompareOrdinal(x, y);
        }
        else if (a is DateTimeOffset t && b is DateTimeOffset u)
        {
            c = t.CompareTo(u);
        }
        else
        {
            throw YaqlEvaluator.NoFunction($"'{op}' cannot compare {TypeName(a)} with {TypeName(b)}", offset);
        }

        return op switch
        {
            "<" => c < 0,
            "<=" => c <= 0,
            ">" => c > 0,
            _ => c >= 0,
        };
    }

    /// <summary>
    /// The value as the rest of the engine holds values (<see cref="Py"/>'s model): datetimes, timespans and regexes
    /// become the strings Python prints for them, as Orquesta's output would.
    /// </summary>
    public static object? ToModel(object? value, int offset) => value switch
    {
        null or bool or long or double or string or Undefined => value,
        DateTimeOffset t => PythonDateTime(t),
        TimeSpan s => PythonTimeSpan(s),
        System.Text.RegularExpressions.Regex r => r.ToString(),
        YaqlScope => throw YaqlEvaluator.NoFunction("the expression gives a context (from let(…)) where a value is wanted; follow it with '-> expression'", offset),
        List<object?> list when list is YaqlSet || list.Any(NeedsConversion) => list.Select(v => ToModel(v, offset)).ToList(),
        List<object?> list => list,
        OrderedDictionary<string, object?> dict when dict.Values.Any(NeedsConversion) => new OrderedDictionary<string, object?>(dict.Select(p => KeyValuePair.Create(p.Key, ToModel(p.Value, offset))), StringComparer.Ordinal),
        OrderedDictionary<string, object?> dict => dict,
        _ => value.ToString(),
    };

    private static bool NeedsConversion(object? value) => value switch
    {
        null or bool or long or double or string or Undefined => false,
        List<object?> list => list is YaqlSet || list.Any(NeedsConversion),
        OrderedDictionary<string, object?> dict => dict.Values.Any(NeedsConversion),
        _ => true,
    };

    private static string PythonDateTime(DateTimeOffset t)
    {
        var text = t.ToString(t.Ticks % TimeSpan.TicksPerSecond == 0 ? "yyyy-MM-dd HH:mm:ss" : "yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture);
        return text + t.ToString("zzz", CultureInfo.InvariantCulture);
    }

    private static string PythonTimeSpan(TimeSpan s)
    {
        var days = s.Days != 0 ? $"{s.Days} day{(Math.Abs(s.Days) == 1 ? "" : "s")}, " : "";
        return days + s.ToString(s.Ticks % TimeSpan.TicksPerSecond == 0 ? @"h\:mm\:ss" : @"h\:mm\:ss\.ffffff", CultureInfo.InvariantCulture);
    }
}

/// <summary>The binary operators other than <c>and</c>, <c>or</c>, <c>.</c>, <c>?.</c> and <c>-&gt;</c>.</summary>
internal static class YaqlOperators
{
    public static object? Apply(string op, object? a, object? b, int offset, YaqlEvaluator evaluator)
    {
        switch (op)
        {
            case "=":
                return YaqlValues.Equal(a, b);
            case "!=":
                return !YaqlValues.Equal(a, b);
            case "<" or "<=" or ">" or ">=":
                return YaqlValues.Compare(op, a, b, offset);
            case "in":
                return b switch
                {
                    List<object?> list => list.Any(x => YaqlValues.Equal(x, a)),
                    string s when a is string sub => s.Contains(sub, StringComparison.Ordinal),
                    _ => throw Mismatch(op, a, b, offset),
                };
            case "=~" or "!~":
                if (a is not string text || (b is not string && b is not System.Text.RegularExpressions.Regex))
                {
                    throw Mismatch(op, a, b, offset);
                }

                var regex = b as System.Text.RegularExpressions.Regex ?? YaqlFunctions.Regex((string)b!, offset);
                return regex.IsMatch(text) == (op == "=~");
        }

        if (YaqlValues.IsNumber(a) && YaqlValues.IsNumber(b))
        {
            return Arithmetic(op, a!, b!, offset);
        }

        switch (op, a, b)
        {
            case ("+", string x, string y):
                return evaluator.CheckSize(x + y, offset);
            case ("+", List<object?> x, List<object?> y):
                return evaluator.CheckSize(x is YaqlLazy || y is YaqlLazy ? new YaqlLazy(x.Concat(y)) : x.Concat(y).ToList(), offset);
            case ("+", OrderedDictionary<string, object?> x, OrderedDictionary<string, object?> y):
                var merged = new OrderedDictionary<string, object?>(x, StringComparer.Ordinal);
                foreach (var (k, v) in y)
                {
                    merged[k] = v;
                }

                return merged;
            case ("+", DateTimeOffset t, TimeSpan s):
                return t + s;
            case ("+", TimeSpan s, DateTimeOffset t):
                return t + s;
            case ("-", DateTimeOffset t, TimeSpan s):
                return t - s;
            case ("-", DateTimeOffset t, DateTimeOffset u):
                return t - u;
            case ("*", string s, long or bool):
                return Repeat(s, Py.ToLong(b), offset, evaluator);
            case ("*", long or bool, string s):
                return Repeat(s, Py.ToLong(a), offset, evaluator);
            case ("*", List<object?> l, long or bool):
                evaluator.Reserve(l.Count * Math.Max(0, Py.ToLong(b)), offset);
                return evaluator.CheckSize(Enumerable.Repeat(l, (int)Math.Clamp(Py.ToLong(b), 0, evaluator.Limits.MaxCollectionLength + 1L)).SelectMany(x => x).ToList(), offset);
            case ("*", long or bool, List<object?> l):
                evaluator.Reserve(l.Count * Math.Max(0, Py.ToLong(a)), offset);
                return evaluator.CheckSize(Enumerable.Repeat(l, (int)Math.Clamp(Py.ToLong(a), 0, evaluator.Limits.MaxCollectionLength + 1L)).SelectMany(x => x).ToList(), offset);
        }

        throw Mismatch(op, a, b, offset);
    }

    private static string Repeat(string s, long n, int offset, YaqlEvaluator evaluator)
    {
        if (n <= 0 || s.Length == 0)
        {
            return "";
        }

        return s.Length * n > evaluator.Limits.MaxOutputLength
            ? throw new ExpressionLimitException($"a string at character {offset + 1} is over the size limit")
            : evaluator.CheckSize(new StringBuilder(s.Length * (int)n).Insert(0, s, (int)n).ToString(), offset);
    }

    private static object Arithmetic(string op, object a, object b, int offset)
    {
        if (a is long x && b is long y)
        {
            try
            {
                return op switch
                {
                    "+" => checked(x + y),
                    "-" => checked(x - y),
                    "*" => checked(x * y),
                    "/" => y == 0 ? throw YaqlEvaluator.Fail("integer division by zero", offset) : FloorDiv(x, y),
                    "mod" => y == 0 ? throw YaqlEvaluator.Fail("integer modulo by zero", offset) : ((x % y) + y) % y,
                    _ => throw new InvalidOperationException(op),
                };
            }
            catch (OverflowException)
            {
                throw YaqlEvaluator.Fail($"integer overflow in '{op}'", offset);
            }
        }

        var p = Py.ToDouble(a);
        var q = Py.ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw YaqlEvaluator.Fail("float division by zero", offset) : p / q,
            "mod" => q == 0 ? throw YaqlEvaluator.Fail("float modulo by zero", offset) : p - (Math.Floor(p / q) * q),
            _ => throw new InvalidOperationException(op),
        };
    }

    private static long FloorDiv(long x, long y)
    {
        var q = x / y;
        return (x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static YaqlException Mismatch(string op, object? a, object? b, int offset) =>
        YaqlEvaluator.NoFunction($"'{op}' does not apply to {YaqlValues.TypeName(a)} and {YaqlValues.TypeName(b)}", offset);
}
