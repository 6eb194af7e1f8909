using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>An operation Python would refuse (a TypeError): comparing a string with a number, indexing a number, …</summary>
public sealed class PyTypeError(string message) : Exception(message);

/// <summary>Jinja's undefined value: what a missing variable or key evaluates to. It renders as nothing.</summary>
public sealed class Undefined(string name)
{
    public string Name { get; } = name;

    public override string ToString() => "";
}

/// <summary>
/// Python's value semantics over plain .NET values, the model StackStorm's rules and Jinja templates are written
/// against. Values are null (None), bool, long, double, string, <see cref="List{T}"/> of values (list) and
/// <see cref="OrderedDictionary{TKey,TValue}"/> from string to value (dict), plus <see cref="Undefined"/>.
/// bool is an int (True == 1), ints and floats compare by value, and mixed types that Python cannot order raise
/// <see cref="PyTypeError"/>.
/// </summary>
public static class Py
{
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject obj => Dict(obj),
        JsonArray array => array.Select(FromJson).ToList(),
        JsonValue value => Scalar(value),
        _ => null,
    };

    public static JsonNode? ToJson(object? value) => value switch
    {
        null or Undefined => null,
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        double d => double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(Str(d)),
        string s => JsonValue.Create(s),
        List<object?> list => new JsonArray([.. list.Select(ToJson)]),
        OrderedDictionary<string, object?> dict => new JsonObject(dict.Select(p => KeyValuePair.Create(p.Key, ToJson(p.Value)))),
        _ => JsonValue.Create(value.ToString()),
    };

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        OrderedDictionary<string, object?> => "dict",
        _ => value.GetType().Name,
    };

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static bool Truthy(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        OrderedDictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    /// <summary>Python's <c>==</c>.</summary>
    public static bool Equal(object? a, object? b)
    {
        switch (a, b)
        {
            case (null, null):
                return true;
            case (Undefined, Undefined):
                return true;
            case (string x, string y):
                return string.Equals(x, y, StringComparison.Ordinal);
            case (List<object?> x, List<object?> y):
                return x.Count == y.Count && x.Zip(y).All(p => Equal(p.First, p.Second));
            case (OrderedDictionary<string, object?> x, OrderedDictionary<string, object?> y):
                return x.Count == y.Count && x.All(p => y.TryGetValue(p.Key, out var other) && Equal(p.Value, other));
        }

        if (IsNumber(a) && IsNumber(b))
        {
            return (a, b) switch
            {
                (double or long or bool, double) or (double, long or bool) => ToDouble(a) == ToDouble(b),
                _ => ToLong(a) == ToLong(b),
            };
        }

        return false;
    }

    /// <summary>Python's ordering (<c>&lt;</c>): numbers with numbers, strings with strings, lists element by element.</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
        {
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        }

        switch (a, b)
        {
            case (string x, string y):
                return string.CompareOrdinal(x, y) switch { < 0 => -1, > 0 => 1, _ => 0 };
            case (List<object?> x, List<object?> y):
                for (var i = 0; i < Math.Min(x.Count, y.Count); i++)
                {
                    if (!Equal(x[i], y[i]))
                    {
                        return Compare(x[i], y[i], op);
                    }
                }

                return x.Count.CompareTo(y.Count);
            default:
                throw new PyTypeError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
        }
    }

    /// <summary>Python's <c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item) => container switch
    {
        string s when item is string sub => s.Contains(sub, StringComparison.Ordinal),
        string => throw new PyTypeError($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        List<object?> list => list.Any(x => Equal(x, item)),
        OrderedDictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        _ => throw new PyTypeError($"argument of type '{TypeName(container)}' is not iterable"),
    };

    /// <summary>Python's <c>str()</c>, which is also how Jinja prints a value (containers print as Python literals).</summary>
    public static string Str(object? value) => value switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => s,
        _ => Repr(value),
    };

    /// <summary>Python's <c>repr()</c>.</summary>
    public static string Repr(object? value)
    {
        switch (value)
        {
            case string s:
                return StringRepr(s);
            case List<object?> list:
                return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case OrderedDictionary<string, object?> dict:
                return "{" + string.Join(", ", dict.Select(p => StringRepr(p.Key) + ": " + Repr(p.Value))) + "}";
            default:
                return Str(value);
        }
    }

    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        // Python prints the shortest round-tripping digits, in exponent form below 1e-4 or from 1e16 up.
        var r = d.ToString("E16", CultureInfo.InvariantCulture);
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        var negative = d < 0;
        var digits = new string([.. shortest.TakeWhile(c => c != 'E').Where(char.IsAsciiDigit)]).TrimStart('0');
        if (digits.Length == 0)
        {
            return negative ? "-0.0" : "0.0";
        }

        var exponent = int.Parse(r[(r.IndexOf('E', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture);
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            digits = "0";
        }

        var sign = negative ? "-" : "";
        if (exponent < -4 || exponent >= 16)
        {
            var mantissa = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return $"{sign}{mantissa}e{(exponent < 0 ? "-" : "+")}{Math.Abs(exponent):00}";
        }

        if (exponent < 0)
        {
            return $"{sign}0.{new string('0', -exponent - 1)}{digits}";
        }

        var whole = exponent + 1;
        return whole >= digits.Length
            ? $"{sign}{digits}{new string('0', whole - digits.Length)}.0"
            : $"{sign}{digits[..whole]}.{digits[whole..]}";
    }

    public static double ToDouble(object? value) => value switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new PyTypeError($"'{TypeName(value)}' is not a number"),
    };

    public static long ToLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new PyTypeError($"'{TypeName(value)}' is not a number"),
    };

    public static object? Add(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => x + y,
        (List<object?> x, List<object?> y) => x.Concat(y).ToList(),
        _ when IsNumber(a) && IsNumber(b) => Arithmetic(a, b, (x, y) => checked(x + y), (x, y) => x + y),
        _ => throw new PyTypeError($"unsupported operand type(s) for +: '{TypeName(a)}' and '{TypeName(b)}'"),
    };

    public static object? Subtract(object? a, object? b) => IsNumber(a) && IsNumber(b)
        ? Arithmetic(a, b, (x, y) => checked(x - y), (x, y) => x - y)
        : throw new PyTypeError($"unsupported operand type(s) for -: '{TypeName(a)}' and '{TypeName(b)}'");

    public static object? Multiply(object? a, object? b, int maxLength) => (a, b) switch
    {
        (string s, _) when b is long or bool => Repeat(s, ToLong(b), maxLength),
        (_, string s) when a is long or bool => Repeat(s, ToLong(a), maxLength),
        (List<object?> list, _) when b is long or bool => RepeatList(list, ToLong(b), maxLength),
        _ when IsNumber(a) && IsNumber(b) => Arithmetic(a, b, (x, y) => checked(x * y), (x, y) => x * y),
        _ => throw new PyTypeError($"unsupported operand type(s) for *: '{TypeName(a)}' and '{TypeName(b)}'"),
    };

    public static object? Divide(object? a, object? b)
    {
        var divisor = ToDoubleOperand(b, "/", a);
        var dividend = ToDoubleOperand(a, "/", b);
        return divisor == 0 ? throw new PyTypeError("division by zero") : dividend / divisor;
    }

    public static object? FloorDivide(object? a, object? b)
    {
        if (a is long or bool && b is long or bool)
        {
            var y = ToLong(b);
            return y == 0 ? throw new PyTypeError("integer division or modulo by zero") : (long)Math.Floor((double)ToLong(a) / y);
        }

        var divisor = ToDoubleOperand(b, "//", a);
        return divisor == 0 ? throw new PyTypeError("float floor division by zero") : Math.Floor(ToDoubleOperand(a, "//", b) / divisor);
    }

    public static object? Modulo(object? a, object? b)
    {
        if (a is long or bool && b is long or bool)
        {
            var y = ToLong(b);
            if (y == 0)
            {
                throw new PyTypeError("integer division or modulo by zero");
            }

            var r = ToLong(a) % y;
            return r != 0 && (r < 0) != (y < 0) ? r + y : r;
        }

        var divisor = ToDoubleOperand(b, "%", a);
        if (divisor == 0)
        {
            throw new PyTypeError("float modulo");
        }

        var m = ToDoubleOperand(a, "%", b) % divisor;
        return m != 0 && (m < 0) != (divisor < 0) ? m + divisor : m;
    }

    public static object? Power(object? a, object? b)
    {
        if (a is long or bool && b is long or bool && ToLong(b) >= 0)
        {
            var result = Math.Pow(ToLong(a), ToLong(b));
            return Math.Abs(result) < 9.2e18 ? (object)(long)result : result;
        }

        return Math.Pow(ToDoubleOperand(a, "**", b), ToDoubleOperand(b, "**", a));
    }

    public static object? Negate(object? a) => a switch
    {
        long l => l == long.MinValue ? (object)-(double)l : -l,
        bool b => b ? -1L : 0L,
        double d => -d,
        _ => throw new PyTypeError($"bad operand type for unary -: '{TypeName(a)}'"),
    };

    /// <summary>Python's <c>json.dumps</c>: <c>", "</c> and <c>": "</c> separators, non-ASCII escaped unless told otherwise.</summary>
    public static string JsonDumps(object? value, int? indent = null, bool sortKeys = false, string itemSeparator = ", ", string keySeparator = ": ", bool ensureAscii = true)
    {
        var builder = new StringBuilder();
        Write(value, 0);
        return builder.ToString();

        void Write(object? v, int level)
        {
            switch (v)
            {
                case null or Undefined:
                    builder.Append("null");
                    break;
                case bool b:
                    builder.Append(b ? "true" : "false");
                    break;
                case long l:
                    builder.Append(l.ToString(CultureInfo.InvariantCulture));
                    break;
                case double d:
                    builder.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d));
                    break;
                case string s:
                    JsonString(builder, s, ensureAscii);
                    break;
                case List<object?> list:
                    Container('[', ']', list.Count, i => Write(list[i], level + 1));
                    break;
                case OrderedDictionary<string, object?> dict:
                    var pairs = sortKeys ? [.. dict.OrderBy(p => p.Key, StringComparer.Ordinal)] : dict.ToList();
                    Container('{', '}', pairs.Count, i =>
                    {
                        JsonString(builder, pairs[i].Key, ensureAscii);
                        builder.Append(keySeparator);
                        Write(pairs[i].Value, level + 1);
                    });
                    break;
                default:
                    JsonString(builder, v.ToString() ?? "", ensureAscii);
                    break;
            }

            void Container(char open, char close, int count, Action<int> item)
            {
                builder.Append(open);
                if (count == 0)
                {
                    builder.Append(close);
                    return;
                }

                for (var i = 0; i < count; i++)
                {
                    if (i > 0)
                    {
                        builder.Append(indent is null ? itemSeparator : itemSeparator.TrimEnd());
                    }

                    if (indent is { } n)
                    {
                        builder.Append('\n').Append(' ', n * (level + 1));
                    }

                    item(i);
                }

                if (indent is { } m)
                {
                    builder.Append('\n').Append(' ', m * level);
                }

                builder.Append(close);
            }
        }
    }

    private static void JsonString(StringBuilder builder, string s, bool ensureAscii)
    {
        builder.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append("\\\\"); break;
                case '\n': builder.Append("\\n"); break;
                case '\r': builder.Append("\\r"); break;
                case '\t': builder.Append("\\t"); break;
                case '\b': builder.Append("\\b"); break;
                case '\f': builder.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7e))
                    {
                        builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        builder.Append(c);
                    }

                    break;
            }
        }

        builder.Append('"');
    }

    private static string StringRepr(string s)
    {
        var quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        var builder = new StringBuilder().Append(quote);
        foreach (var c in s)
        {
            builder.Append(c switch
            {
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when c == quote => "\\" + c,
                _ when c < 0x20 || c == 0x7f => $"\\x{(int)c:x2}",
                _ => c.ToString(),
            });
        }

        return builder.Append(quote).ToString();
    }

    private static OrderedDictionary<string, object?> Dict(JsonObject obj)
    {
        var dict = new OrderedDictionary<string, object?>(obj.Count, StringComparer.Ordinal);
        foreach (var (key, child) in obj)
        {
            dict[key] = FromJson(child);
        }

        return dict;
    }

    private static object? Scalar(JsonValue value) => value.GetValueKind() switch
    {
        JsonValueKind.String => value.GetValue<string>(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => Number(value),
        _ => null,
    };

    // An integer in the JSON text is an int, anything else a float, whatever .NET type backs the node.
    private static object Number(JsonValue value)
    {
        if (value.TryGetValue<long>(out var l))
        {
            return l;
        }

        if (value.TryGetValue<int>(out var i))
        {
            return (long)i;
        }

        var text = value.ToJsonString();
        return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    private static object Arithmetic(object? a, object? b, Func<long, long, long> integer, Func<double, double, double> real)
    {
        if (a is double || b is double)
        {
            return real(ToDouble(a), ToDouble(b));
        }

        try
        {
            return integer(ToLong(a), ToLong(b));
        }
        catch (OverflowException)
        {
            return real(ToDouble(a), ToDouble(b));
        }
    }

    private static double ToDoubleOperand(object? value, string op, object? other) => IsNumber(value)
        ? ToDouble(value)
        : throw new PyTypeError($"unsupported operand type(s) for {op}: '{TypeName(value)}' and '{TypeName(other)}'");

    private static string Repeat(string s, long times, int maxLength)
    {
        if (times <= 0)
        {
            return "";
        }

        if (s.Length * times > maxLength)
        {
            throw new ExpressionLimitException($"string repetition would exceed {maxLength} characters");
        }

        return string.Concat(Enumerable.Repeat(s, (int)times));
    }

    private static List<object?> RepeatList(List<object?> list, long times, int maxLength)
    {
        if (times <= 0)
        {
            return [];
        }

        if (list.Count * times > maxLength)
        {
            throw new ExpressionLimitException($"list repetition would exceed {maxLength} items");
        }

        return [.. Enumerable.Repeat(list, (int)times).SelectMany(x => x)];
    }
}
