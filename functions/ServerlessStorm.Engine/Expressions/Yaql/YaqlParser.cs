using System.Globalization;
using System.Text;

namespace ServerlessStorm.Engine.Expressions.Yaql;

/// <summary>
/// Lexes and parses YAQL, the language of Orquesta's <c>&lt;% … %&gt;</c>. Operator precedence, from the tightest:
/// <c>. ?.</c>, indexing <c>[ ]</c>, unary <c>+ -</c>, <c>=~ !~</c>, <c>* / mod</c>, <c>+ -</c>,
/// comparisons <c>&gt; &lt; &gt;= &lt;= != = in</c>, <c>not</c>, <c>and</c>, <c>or</c>, <c>-&gt;</c> (right-associative).
/// <c>name =&gt; value</c> appears only in argument lists and maps. A name directly followed by <c>(</c> is a call;
/// any other bare name is a keyword (a string, or a key after a dot).
/// </summary>
internal sealed class YaqlParser
{
    private const int MaxNesting = 64;

    private static readonly Dictionary<string, (int Precedence, bool RightAssociative)> Binary = new(StringComparer.Ordinal)
    {
        ["->"] = (1, true),
        ["or"] = (2, false),
        ["and"] = (3, false),
        [">"] = (5, false), ["<"] = (5, false), [">="] = (5, false), ["<="] = (5, false), ["!="] = (5, false), ["="] = (5, false), ["in"] = (5, false),
        ["+"] = (6, false), ["-"] = (6, false),
        ["*"] = (7, false), ["/"] = (7, false), ["mod"] = (7, false),
        ["=~"] = (8, false), ["!~"] = (8, false),
        ["["] = (10, false),
        ["."] = (11, false), ["?."] = (11, false),
    };

    private const int NotPrecedence = 4;
    private const int UnaryPrecedence = 9;

    // Longest first, so that "=>" wins over "=" and "?." over ".".
    private static readonly string[] Symbols = ["=>", "->", "?.", "!=", ">=", "<=", "=~", "!~", ".", "+", "-", "*", "/", ">", "<", "=", "[", "]", "{", "}", "(", ")", ","];
    private static readonly HashSet<string> WordOperators = new(StringComparer.Ordinal) { "and", "or", "not", "in", "mod" };

    private readonly string _text;
    private readonly int _base;
    private readonly List<Token> _tokens;
    private int _next;
    private int _depth;

    private YaqlParser(string text, int offset)
    {
        _text = text;
        _base = offset;
        _tokens = Lex(text, offset);
    }

    /// <summary>Parses <paramref name="text"/>, which starts at <paramref name="offset"/> in the template, for positions in errors.</summary>
    public static YaqlNode Parse(string text, int offset = 0)
    {
        var parser = new YaqlParser(text, offset);
        if (parser.Peek.Kind == TokenKind.End)
        {
            throw new TemplateSyntaxException($"'<% %>' holds no expression (at character {parser.Peek.Position + 1})", parser.Peek.Position);
        }

        var node = parser.Expression(0);
        if (parser.Peek.Kind != TokenKind.End)
        {
            throw parser.Unexpected(parser.Peek);
        }

        return node;
    }

    private Token Peek => _tokens[_next];

    private Token Take() => _tokens[_next++];

    private YaqlNode Expression(int minPrecedence)
    {
        if (++_depth > MaxNesting)
        {
            throw Error($"an expression nested deeper than {MaxNesting}", Peek);
        }

        try
        {
            var left = Prefix();
            var links = 0;
            while (Peek is { Kind: TokenKind.Operator } op && Binary.TryGetValue(op.Text, out var info) && info.Precedence >= minPrecedence)
            {
                // A chain (a + b + …, x[0][0]…) builds a tree as deep as it is long, which later walks recurse into.
                if (++links > MaxNesting * 16)
                {
                    throw Error($"a chain of more than {MaxNesting * 16} operators", op);
                }

                Take();
                if (op.Text == "[")
                {
                    left = new YaqlIndex(left, Arguments("]", op), op.Position);
                    continue;
                }

                var right = Expression(info.RightAssociative ? info.Precedence : info.Precedence + 1);
                left = new YaqlBinary(op.Text, left, right, op.Position);
            }

            return left;
        }
        finally
        {
            _depth--;
        }
    }

    private YaqlNode Prefix()
    {
        var token = Take();
        switch (token.Kind)
        {
            case TokenKind.Constant:
                return new YaqlConstant(token.Value, token.Position);
            case TokenKind.Keyword:
                return new YaqlKeyword(token.Text, token.Position);
            case TokenKind.Variable:
                return new YaqlVariable(token.Text, token.Position);
            case TokenKind.Function:
                return new YaqlCall(token.Text, Arguments(")", token), token.Position);
            case TokenKind.Operator:
                switch (token.Text)
                {
                    case "-" or "+":
                        return new YaqlUnary(token.Text, Expression(UnaryPrecedence), token.Position);
                    case "not":
                        return new YaqlUnary("not", Expression(NotPrecedence), token.Position);
                    case "(":
                        var inner = Expression(0);
                        Expect(")", token);
                        return inner;
                    case "[":
                        return new YaqlList(Arguments("]", token), token.Position);
                    case "{":
                        // A value without '=>' parses, and fails when evaluated, as in YAQL.
                        return new YaqlMap(Arguments("}", token), token.Position);
                }

                break;
        }

        throw Unexpected(token);
    }

    // Positional arguments, then `name => value` pairs; in a map, only pairs.
    private List<YaqlNode> Arguments(string close, Token opener)
    {
        var args = new List<YaqlNode>();
        if (Peek is { Kind: TokenKind.Operator } end && end.Text == close)
        {
            Take();
            return args;
        }

        while (true)
        {
            if (Peek is { Kind: TokenKind.Operator, Text: "," or ")" or "]" or "}" } empty)
            {
                throw Error("a missing argument", empty);
            }

            var value = Expression(0);
            if (Peek is { Kind: TokenKind.Operator, Text: "=>" } arrow)
            {
                Take();
                value = new YaqlMapping(value, Expression(0), arrow.Position);
            }
            else if (args.Count > 0 && args[^1] is YaqlMapping && close != "}")
            {
                throw new TemplateSyntaxException($"a positional argument follows a 'name => value' argument at character {value.Offset + 1}", value.Offset);
            }

            args.Add(value);
            var separator = Take();
            if (separator is { Kind: TokenKind.Operator, Text: "," })
            {
                continue;
            }

            if (separator is { Kind: TokenKind.Operator } s && s.Text == close)
            {
                return args;
            }

            if (separator.Kind == TokenKind.End)
            {
                throw new TemplateSyntaxException($"'{opener.Text}' at character {opener.Position + 1} is never closed with '{close}'", opener.Position);
            }

            throw Unexpected(separator);
        }
    }

    private void Expect(string text, Token opener)
    {
        var token = Take();
        if (token is { Kind: TokenKind.Operator } t && t.Text == text)
        {
            return;
        }

        throw token.Kind == TokenKind.End
            ? new TemplateSyntaxException($"'{opener.Text}' at character {opener.Position + 1} is never closed with '{text}'", opener.Position)
            : Unexpected(token);
    }

    private TemplateSyntaxException Unexpected(Token token)
    {
        if (token.Kind == TokenKind.End)
        {
            return new TemplateSyntaxException($"the expression '{_text.Trim()}' ends too early (at character {token.Position + 1})", token.Position);
        }

        // The usual slips of a Jinja or Python writer, named in YAQL's terms.
        var index = _tokens.IndexOf(token);
        var previous = index > 0 ? _tokens[index - 1] : null;
        var hint = (previous?.Text, token.Text) switch
        {
            ("=", "=") => " (YAQL compares with '=', not '==')",
            ("*", "*") => " (YAQL has no '**'; use pow(a, b))",
            (_, "(") when previous?.Kind == TokenKind.Keyword => $" (a call is written without a space: {previous.Text}(…))",
            _ => "",
        };
        return Error($"'{token.Text}'{hint}", token);
    }

    private TemplateSyntaxException Error(string what, Token token) =>
        new($"unexpected {what} at character {token.Position + 1} in '{_text.Trim()}'", token.Position);

    // ---- lexer -------------------------------------------------------------------------------------------------

    private enum TokenKind
    {
        Constant,
        Keyword,
        Function,
        Variable,
        Operator,
        End,
    }

    private sealed record Token(TokenKind Kind, string Text, object? Value, int Position);

    private static List<Token> Lex(string text, int offset)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (true)
        {
            while (i < text.Length && text[i] is ' ' or '\t' or '\r' or '\n')
            {
                i++;
            }

            if (i >= text.Length)
            {
                tokens.Add(new Token(TokenKind.End, "", null, offset + i));
                return tokens;
            }

            var start = i;
            var c = text[i];
            if (c == '$')
            {
                i++;
                while (i < text.Length && IsWordChar(text[i]))
                {
                    i++;
                }

                tokens.Add(new Token(TokenKind.Variable, text[(start + 1)..i], null, offset + start));
                continue;
            }

            if (char.IsAsciiDigit(c))
            {
                while (i < text.Length && char.IsAsciiDigit(text[i]))
                {
                    i++;
                }

                var isFloat = false;
                if (i + 1 < text.Length && text[i] == '.' && char.IsAsciiDigit(text[i + 1]))
                {
                    isFloat = true;
                    i++;
                    while (i < text.Length && char.IsAsciiDigit(text[i]))
                    {
                        i++;
                    }
                }

                if (i < text.Length && IsWordChar(text[i]))
                {
                    throw new TemplateSyntaxException($"invalid number '{text[start..(i + 1)]}' at character {offset + start + 1}", offset + start);
                }

                var digits = text[start..i];
                object value = isFloat
                    ? double.Parse(digits, CultureInfo.InvariantCulture)
                    : long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var l)
                        ? (object)l
                        : throw new TemplateSyntaxException($"the number {digits} at character {offset + start + 1} is too large", offset + start);
                tokens.Add(new Token(TokenKind.Constant, digits, value, offset + start));
                continue;
            }

            if (char.IsLetter(c) || c == '_')
            {
                if (c == '_' && i + 1 < text.Length && text[i + 1] == '_')
                {
                    throw new TemplateSyntaxException($"names starting with '__' are not allowed (at character {offset + start + 1})", offset + start);
                }

                while (i < text.Length && IsWordChar(text[i]))
                {
                    i++;
                }

                var word = text[start..i];
                if (i < text.Length && text[i] == '(')
                {
                    i++;
                    tokens.Add(new Token(TokenKind.Function, word, null, offset + start));
                }
                else if (WordOperators.Contains(word))
                {
                    tokens.Add(new Token(TokenKind.Operator, word, null, offset + start));
                }
                else
                {
                    tokens.Add(word switch
                    {
                        "true" => new Token(TokenKind.Constant, word, true, offset + start),
                        "false" => new Token(TokenKind.Constant, word, false, offset + start),
                        "null" => new Token(TokenKind.Constant, word, null, offset + start),
                        _ => new Token(TokenKind.Keyword, word, null, offset + start),
                    });
                }

                continue;
            }

            if (c is '\'' or '"' or '`')
            {
                tokens.Add(new Token(TokenKind.Constant, text[start..Math.Min(text.Length, start + 1)], ReadString(text, ref i, offset), offset + start));
                continue;
            }

            var symbol = Symbols.FirstOrDefault(s => string.CompareOrdinal(text, i, s, 0, s.Length) == 0)
                ?? throw new TemplateSyntaxException(
                    $"unexpected character '{c}' at character {offset + start + 1}{(c == '|' ? " (YAQL has no filters: call a function, e.g. int(x) or x.toUpper(), or use {{ }} for Jinja)" : "")}",
                    offset + start);
            i += symbol.Length;
            tokens.Add(new Token(TokenKind.Operator, symbol, null, offset + start));
        }
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';

    // '…' and "…" take backslash escapes; `…` is verbatim except for \`.
    private static string ReadString(string text, ref int i, int offset)
    {
        var quote = text[i];
        var start = i;
        var value = new StringBuilder();
        i++;
        while (true)
        {
            if (i >= text.Length)
            {
                throw new TemplateSyntaxException($"the string starting at character {offset + start + 1} is never closed with {quote}", offset + start);
            }

            var c = text[i];
            if (c == quote)
            {
                i++;
                return value.ToString();
            }

            if (c != '\\' || i + 1 >= text.Length)
            {
                value.Append(c);
                i++;
                continue;
            }

            var n = text[i + 1];
            if (quote == '`')
            {
                value.Append(n == '`' ? "`" : "\\" + n);
                i += 2;
                continue;
            }

            i += 2;
            switch (n)
            {
                case 'n': value.Append('\n'); break;
                case 't': value.Append('\t'); break;
                case 'r': value.Append('\r'); break;
                case 'a': value.Append('\a'); break;
                case 'b': value.Append('\b'); break;
                case 'f': value.Append('\f'); break;
                case 'v': value.Append('\v'); break;
                case '\\' or '\'' or '"': value.Append(n); break;
                case 'x' when Hex(text, i, 2, out var x): value.Append((char)x); i += 2; break;
                case 'u' when Hex(text, i, 4, out var u): value.Append((char)u); i += 4; break;
                case 'U' when Hex(text, i, 8, out var big): value.Append(char.ConvertFromUtf32(big)); i += 8; break;
                case >= '0' and <= '7':
                    var octal = n - '0';
                    for (var k = 0; k < 2 && i < text.Length && text[i] is >= '0' and <= '7'; k++, i++)
                    {
                        octal = (octal * 8) + (text[i] - '0');
                    }

                    value.Append((char)octal);
                    break;
                default:
                    // An unknown escape stays as written, as in Python.
                    value.Append('\\').Append(n);
                    break;
            }
        }
    }

    private static bool Hex(string text, int at, int length, out int value)
    {
        value = 0;
        return at + length <= text.Length && int.TryParse(text.AsSpan(at, length), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value)
            && (length < 8 || value <= 0x10FFFF);
    }
}
