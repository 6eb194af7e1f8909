using System.Globalization;
using System.Numerics;
using System.Text;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>
/// Python's printf-style string formatting (<c>"%s-%05.2f" % (a, b)</c>, <c>"%(name)s" % dict</c>) over the
/// <see cref="Py"/> value model, with Python's conversions, flags, widths and precisions, and its errors.
/// </summary>
public static class PyFormat
{
    /// <summary>
    /// <c>format % args</c>. <paramref name="argsIsTuple"/>: <paramref name="args"/> is a tuple literal, whose items
    /// are the arguments; any other value (a list or dict included) is one argument, or the mapping for <c>%(name)</c>.
    /// </summary>
    public static string Format(string format, object? args, bool argsIsTuple, int maxLength = int.MaxValue)
    {
        var items = argsIsTuple ? (List<object?>)args! : [args];
        var mapping = !argsIsTuple ? args as OrderedDictionary<string, object?> : null;
        // As Python: a dict or list argument that no conversion used is not "left over".
        var mappingLike = !argsIsTuple && args is OrderedDictionary<string, object?> or List<object?>;
        var next = 0;
        var usedMapping = false;
        var output = new StringBuilder();

        object? NextArg()
        {
            if (next >= items.Count)
            {
                throw new PyTypeError("not enough arguments for format string");
            }

            return items[next++];
        }

        var i = 0;
        while (i < format.Length)
        {
            var percent = format.IndexOf('%', i);
            if (percent < 0)
            {
                output.Append(format, i, format.Length - i);
                break;
            }

            output.Append(format, i, percent - i);
            i = percent + 1;
            object? value = null;
            var hasValue = false;
            if (i < format.Length && format[i] == '(')
            {
                if (mapping is null)
                {
                    throw new PyTypeError("format requires a mapping");
                }

                var depth = 1;
                var start = ++i;
                while (i < format.Length && depth > 0)
                {
                    depth += format[i] switch { '(' => 1, ')' => -1, _ => 0 };
                    i++;
                }

                if (depth > 0)
                {
                    throw new PyTypeError("incomplete format key");
                }

                var key = format[start..(i - 1)];
                value = mapping.TryGetValue(key, out var found) ? found : throw new PyTypeError($"KeyError: {Py.Repr(key)} (the format names a key the mapping does not have)");
                hasValue = true;
                usedMapping = true;
            }

            var (left, zero, plus, space, alternate) = (false, false, false, false, false);
            for (; i < format.Length && "-0+ #".Contains(format[i], StringComparison.Ordinal); i++)
            {
                switch (format[i])
                {
                    case '-': left = true; break;
                    case '0': zero = true; break;
                    case '+': plus = true; break;
                    case ' ': space = true; break;
                    case '#': alternate = true; break;
                }
            }

            var width = ReadNumber(format, ref i, () => Py.ToLong(CheckStar(NextArg(), hasValue)));
            if (width < 0)
            {
                left = true;
                width = -width;
            }

            int? precision = null;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                precision = (int)Math.Max(0, ReadNumber(format, ref i, () => Py.ToLong(CheckStar(NextArg(), hasValue))));
            }

            // Python accepts (and ignores) a length modifier.
            while (i < format.Length && format[i] is 'h' or 'l' or 'L')
            {
                i++;
            }

            if (i >= format.Length)
            {
                throw new PyTypeError("incomplete format");
            }

            var type = format[i++];
            if (type == '%')
            {
                output.Append('%');
                continue;
            }

            if (!hasValue)
            {
                value = NextArg();
            }

            var (sign, body, numeric) = Convert(type, value, precision, alternate, i - 1);
            if (numeric && sign.Length == 0 && (plus || space))
            {
                sign = plus ? "+" : " ";
            }

            var length = sign.Length + body.Length;
            if (length >= width)
            {
                output.Append(sign).Append(body);
            }
            else if (left)
            {
                output.Append(sign).Append(body).Append(' ', (int)width - length);
            }
            else if (zero && numeric && body.Length > 0 && (char.IsAsciiDigit(body[0]) || body[0] == '.'))
            {
                // Zeros go after the sign and any 0x/0o prefix.
                var prefix = body.Length > 1 && body[0] == '0' && body[1] is 'x' or 'X' or 'o' && type is 'x' or 'X' or 'o' && alternate ? body[..2] : "";
                output.Append(sign).Append(prefix).Append('0', (int)width - length).Append(body, prefix.Length, body.Length - prefix.Length);
            }
            else
            {
                output.Append(' ', (int)width - length).Append(sign).Append(body);
            }

            if (output.Length > maxLength)
            {
                throw new ExpressionLimitException($"the formatted string is over the {maxLength} character limit");
            }
        }

        if (next < items.Count && !usedMapping && !(mappingLike && next == 0))
        {
            throw new PyTypeError("not all arguments converted during string formatting");
        }

        return output.ToString();
    }

    private static object? CheckStar(object? value, bool named) =>
        named ? throw new PyTypeError("* wants int, and cannot be used with a mapping key") : value is long or bool ? value : throw new PyTypeError("* wants int");

    private static long ReadNumber(string format, ref int i, Func<long> star)
    {
        if (i < format.Length && format[i] == '*')
        {
            i++;
            var given = star();
            return given is >= -100_000 and <= 100_000 ? given : throw new PyTypeError("width or precision too big");
        }

        var start = i;
        while (i < format.Length && char.IsAsciiDigit(format[i]))
        {
            i++;
        }

        return i == start ? 0 : long.TryParse(format.AsSpan(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 100_000
            ? n
            : throw new PyTypeError("width or precision too big");
    }

    private static (string Sign, string Body, bool Numeric) Convert(char type, object? value, int? precision, bool alternate, int index)
    {
        switch (type)
        {
            case 's':
                return ("", Truncate(Py.Str(value), precision), false);
            case 'r' or 'a':
                return ("", Truncate(Py.Repr(value), precision), false);
            case 'c':
                return ("", value switch
                {
                    string { Length: 1 } s => s,
                    long or bool when Py.ToLong(value) is >= 0xD800 and <= 0xDFFF and var surrogate => ((char)surrogate).ToString(),
                    long or bool when Py.ToLong(value) is >= 0 and <= 0x10FFFF and var code => char.ConvertFromUtf32((int)code),
                    long or bool => throw new PyTypeError("%c arg not in range(0x110000)"),
                    _ => throw new PyTypeError("%c requires int or char"),
                }, false);
            case 'd' or 'i' or 'u':
                var whole = value switch
                {
                    long or bool => new BigInteger(Py.ToLong(value)),
                    double d when double.IsFinite(d) => new BigInteger(Math.Truncate(d)),
                    double d => throw new PyTypeError($"cannot convert float {Py.Str(d)} to integer"),
                    _ => throw new PyTypeError($"%{type} format: a real number is required, not {Py.TypeName(value)}"),
                };
                return Integer(whole, 10, precision, "", false);
            case 'x' or 'X' or 'o':
                if (value is not (long or bool))
                {
                    throw new PyTypeError($"%{type} format: an integer is required, not {Py.TypeName(value)}");
                }

                return Integer(new BigInteger(Py.ToLong(value)), type == 'o' ? 8 : 16, precision, alternate ? "0" + type : "", type == 'X');
            case 'e' or 'E' or 'f' or 'F' or 'g' or 'G':
                if (!Py.IsNumber(value))
                {
                    throw new PyTypeError($"must be real number, not {Py.TypeName(value)}");
                }

                var number = Py.ToDouble(value);
                return (double.IsNegative(number) ? "-" : "", Float(Math.Abs(number), type, precision ?? 6, alternate), true);
            default:
                throw new PyTypeError($"unsupported format character '{type}' (0x{(int)type:x}) at index {index}");
        }
    }

    private static string Truncate(string text, int? precision) => precision is { } p && p < text.Length ? text[..p] : text;

    private static (string, string, bool) Integer(BigInteger value, int radix, int? precision, string prefix, bool upper)
    {
        var magnitude = BigInteger.Abs(value);
        var digits = radix switch
        {
            10 => magnitude.ToString(CultureInfo.InvariantCulture),
            16 => magnitude.IsZero ? "0" : magnitude.ToString("x", CultureInfo.InvariantCulture).TrimStart('0'),
            _ => ToOctal(magnitude),
        };
        if (upper)
        {
            digits = digits.ToUpperInvariant();
        }

        if (precision is { } p && digits.Length < p)
        {
            digits = new string('0', p - digits.Length) + digits;
        }

        return (value.Sign < 0 ? "-" : "", prefix + digits, true);
    }

    private static string ToOctal(BigInteger value)
    {
        if (value.IsZero)
        {
            return "0";
        }

        var builder = new StringBuilder();
        while (!value.IsZero)
        {
            builder.Insert(0, (char)('0' + (int)(value % 8)));
            value /= 8;
        }

        return builder.ToString();
    }

    /// <summary>A non-negative float as Python's %e, %f or %g prints it: exact, rounding half to even.</summary>
    internal static string Float(double value, char type, int precision, bool alternate)
    {
        var upper = char.IsUpper(type);
        if (double.IsNaN(value) || double.IsInfinity(value))
        {
            var text = double.IsNaN(value) ? "nan" : "inf";
            return upper ? text.ToUpperInvariant() : text;
        }

        var (digits, exponent) = ExactDecimal(value);
        switch (char.ToLowerInvariant(type))
        {
            case 'f':
                return Fixed(digits, exponent, precision, alternate);
            case 'e':
                return Scientific(digits, exponent, precision, alternate, upper);
            default:
                var p = precision == 0 ? 1 : precision;
                var (_, sciExponent) = RoundSignificant(digits, exponent, p);
                var result = sciExponent >= -4 && sciExponent < p
                    ? Fixed(digits, exponent, p - 1 - sciExponent, alternate)
                    : Scientific(digits, exponent, p - 1, alternate, upper);
                if (alternate)
                {
                    return result;
                }

                var e = result.IndexOfAny(['e', 'E']);
                var mantissa = e < 0 ? result : result[..e];
                if (mantissa.Contains('.', StringComparison.Ordinal))
                {
                    mantissa = mantissa.TrimEnd('0').TrimEnd('.');
                }

                return e < 0 ? mantissa : mantissa + result[e..];
        }
    }

    // value = digits × 10^exponent exactly (a double is a finite binary fraction, hence a finite decimal).
    private static (string Digits, int Exponent) ExactDecimal(double value)
    {
        if (value == 0)
        {
            return ("0", 0);
        }

        var bits = BitConverter.DoubleToInt64Bits(value);
        var rawExponent = (int)((bits >> 52) & 0x7FF);
        var fraction = bits & 0xFFFFFFFFFFFFFL;
        var mantissa = rawExponent == 0 ? fraction : fraction | (1L << 52);
        var binaryExponent = (rawExponent == 0 ? 1 : rawExponent) - 1075;
        if (binaryExponent >= 0)
        {
            return ((new BigInteger(mantissa) << binaryExponent).ToString(CultureInfo.InvariantCulture), 0);
        }

        // m / 2^k = m × 5^k / 10^k
        var scaled = new BigInteger(mantissa) * BigInteger.Pow(5, -binaryExponent);
        var text = scaled.ToString(CultureInfo.InvariantCulture);
        var trimmed = text.TrimEnd('0');
        return (trimmed, binaryExponent + (text.Length - trimmed.Length));
    }

    // Keeps the first `keep` digits of `digits` (which may be fewer), rounding half to even on what is dropped.
    private static string RoundDigits(string digits, int keep)
    {
        if (keep >= digits.Length)
        {
            return digits + new string('0', keep - digits.Length);
        }

        if (keep < 0)
        {
            return "";
        }

        var kept = digits[..keep];
        var dropped = digits[keep..];
        var up = dropped[0] > '5' || (dropped[0] == '5' && (dropped.AsSpan(1).ContainsAnyExcept('0') || (kept.Length > 0 && (kept[^1] - '0') % 2 == 1)));
        if (!up)
        {
            return kept.Length == 0 ? "0" : kept;
        }

        var number = (kept.Length == 0 ? BigInteger.Zero : BigInteger.Parse(kept, CultureInfo.InvariantCulture)) + 1;
        var text = number.ToString(CultureInfo.InvariantCulture);
        return text.Length < keep ? new string('0', keep - text.Length) + text : text;
    }

    private static string Fixed(string digits, int exponent, int precision, bool alternate)
    {
        // round(value × 10^precision) as an integer, then the point put back.
        string units;
        if (digits == "0")
        {
            units = "0";
        }
        else if (exponent + precision >= 0)
        {
            units = digits + new string('0', exponent + precision);
        }
        else
        {
            var keep = digits.Length + exponent + precision;
            units = keep >= 0 ? RoundDigits(digits, keep) : "0";
            if (keep == 0 && units != "0")
            {
                units = "1";
            }
        }

        units = units.TrimStart('0');
        if (units.Length <= precision)
        {
            units = new string('0', precision + 1 - units.Length) + units;
        }

        var integer = units[..^precision];
        if (precision == 0)
        {
            return alternate ? units + "." : units;
        }

        return integer + "." + units[^precision..];
    }

    private static (string Digits, int SciExponent) RoundSignificant(string digits, int exponent, int significant)
    {
        if (digits == "0")
        {
            return (new string('0', significant), 0);
        }

        var sciExponent = digits.Length - 1 + exponent;
        var rounded = RoundDigits(digits, significant);
        if (rounded.Length > significant)
        {
            rounded = rounded[..significant];
            sciExponent++;
        }

        return (rounded, sciExponent);
    }

    private static string Scientific(string digits, int exponent, int precision, bool alternate, bool upper)
    {
        var (rounded, sciExponent) = RoundSignificant(digits, exponent, precision + 1);
        var mantissa = precision > 0 ? rounded[0] + "." + rounded[1..] : alternate ? rounded + "." : rounded;
        var e = upper ? 'E' : 'e';
        return $"{mantissa}{e}{(sciExponent < 0 ? '-' : '+')}{Math.Abs(sciExponent):00}";
    }
}
