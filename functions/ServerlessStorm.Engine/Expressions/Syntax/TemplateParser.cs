using System.Globalization;
using System.Text;

namespace ServerlessStorm.Engine.Expressions.Syntax;

/// <summary>
/// Parses templates in Jinja syntax — <c>{{ … }}</c>, <c>{% if/elif/else/endif %}</c>, <c>{% for … %}</c>,
/// <c>{% set %}</c>, <c>{# … #}</c>, with <c>-</c> whitespace control — and Orquesta's <c>&lt;% … %&gt;</c>, which
/// holds YAQL (parsed by <see cref="Yaql.YaqlParser"/>). Blocks follow StackStorm's environment (trim_blocks and lstrip_blocks on).
/// </summary>
internal sealed class TemplateParser
{
    private const int MaxNesting = 64;

    private static readonly Dictionary<string, int> BinaryPrecedence = new(StringComparer.Ordinal)
    {
        ["or"] = 1, ["and"] = 2,
        ["=="] = 4, ["!="] = 4, ["<"] = 4, [">"] = 4, ["<="] = 4, [">="] = 4, ["in"] = 4, ["not in"] = 4,
        ["~"] = 5, ["+"] = 6, ["-"] = 6, ["*"] = 7, ["/"] = 7, ["//"] = 7, ["%"] = 7,
    };

    private readonly string _source;
    private readonly bool _orquesta;
    private int _position;
    private int _depth;
    private bool _trimNextText;

    private TemplateParser(string source, bool orquesta = false)
    {
        _source = source;
        _orquesta = orquesta;
    }

    /// <summary>Parses a template; <c>&lt;% … %&gt;</c> is an expression only when <paramref name="orquesta"/> is set.</summary>
    public static IReadOnlyList<Node> ParseTemplate(string source, bool orquesta)
    {
        var parser = new TemplateParser(source, orquesta);
        var body = parser.ParseBody([], out var end);
        if (end is not null)
        {
            throw new TemplateSyntaxException($"unexpected '{{% {end} %}}'", parser._position);
        }

        return body;
    }

    public static Expr ParseExpression(string source)
    {
        var parser = new TemplateParser(source);
        var expr = parser.Expression();
        parser.SkipSpaces();
        if (parser._position < source.Length)
        {
            throw new TemplateSyntaxException($"unexpected '{source[parser._position]}'", parser._position);
        }

        return expr;
    }

    // Reads nodes until one of the block keywords in `terminators` (returned in `end`) or the end of the source.
    private List<Node> ParseBody(string[] terminators, out string? end)
    {
        var nodes = new List<Node>();
        var text = new StringBuilder();
        end = null;
        while (_position < _source.Length)
        {
            var tag = NextTagStart(_position);
            if (tag < 0)
            {
                text.Append(_source, _position, _source.Length - _position);
                _position = _source.Length;
                break;
            }

            text.Append(_source, _position, tag - _position);
            _position = tag;
            var opener = _source.Substring(tag, 2);
            // Orquesta's <% %> has no whitespace control: a '-' after it is YAQL's minus.
            var stripBefore = opener != "<%" && tag + 2 < _source.Length && _source[tag + 2] == '-';
            var isBlock = opener is "{%" or "{#";
            FlushText(nodes, text, stripBefore, lstrip: isBlock && !stripBefore);
            _position = tag + 2 + (stripBefore ? 1 : 0);

            switch (opener)
            {
                case "{#":
                    var close = _source.IndexOf("#}", _position, StringComparison.Ordinal);
                    if (close < 0)
                    {
                        throw new TemplateSyntaxException("'{#' comment is never closed with '#}'", tag);
                    }

                    _trimNextText = close > _position && _source[close - 1] == '-' ? true : false;
                    _position = close + 2;
                    TrimBlockNewline(_trimNextText);
                    break;
                case "<%":
                    nodes.Add(new OutputNode(Yaql(tag)));
                    break;
                case "{{":
                    var expr = Expression();
                    ExpectClose("}}", tag);
                    nodes.Add(new OutputNode(expr));
                    break;
                default:
                    SkipSpaces();
                    var keywordAt = _position;
                    var keyword = Identifier() ?? throw new TemplateSyntaxException("expected a statement after '{%'", _position);
                    if (terminators.Contains(keyword))
                    {
                        end = keyword;
                        _position = keywordAt;
                        return Finish(nodes, text);
                    }

                    nodes.Add(Statement(keyword, keywordAt));
                    break;
            }
        }

        return Finish(nodes, text);
    }

    private List<Node> Finish(List<Node> nodes, StringBuilder text)
    {
        FlushText(nodes, text, false, false);
        return nodes;
    }

    private Node Statement(string keyword, int at)
    {
        if (++_depth > MaxNesting)
        {
            throw new TemplateSyntaxException($"blocks nested deeper than {MaxNesting}", at);
        }

        try
        {
            switch (keyword)
            {
                case "if":
                    return If();
                case "for":
                    return For(at);
                case "set":
                    SkipSpaces();
                    var name = Identifier() ?? throw new TemplateSyntaxException("expected a name after 'set'", _position);
                    SkipSpaces();
                    Expect("=");
                    var value = Expression();
                    EndBlock();
                    return new SetNode(name, value);
                default:
                    throw new TemplateSyntaxException($"unknown statement '{keyword}' (supported: if, for, set)", at);
            }
        }
        finally
        {
            _depth--;
        }
    }

    private IfNode If()
    {
        var branches = new List<(Expr, IReadOnlyList<Node>)>();
        var condition = Expression();
        EndBlock();
        List<Node>? elseBody = null;
        while (true)
        {
            var start = _position;
            var body = ParseBody(["elif", "else", "endif"], out var end);
            if (end is null)
            {
                throw new TemplateSyntaxException("'{% if %}' is never closed with '{% endif %}'", start);
            }

            Identifier();
            branches.Add((condition, body));
            if (end == "elif")
            {
                condition = Expression();
                EndBlock();
                continue;
            }

            EndBlock();
            if (end == "else")
            {
                elseBody = ParseBody(["endif"], out var close);
                if (close is null)
                {
                    throw new TemplateSyntaxException("'{% if %}' is never closed with '{% endif %}'", start);
                }

                Identifier();
                EndBlock();
            }

            return new IfNode(branches, elseBody);
        }
    }

    private ForNode For(int at)
    {
        var targets = new List<string>();
        do
        {
            SkipSpaces();
            targets.Add(Identifier() ?? throw new TemplateSyntaxException("expected a loop variable after 'for'", _position));
            SkipSpaces();
        }
        while (TryConsume(","));

        if (!TryKeyword("in"))
        {
            throw new TemplateSyntaxException("expected 'in' in the for loop", _position);
        }

        var iterable = Expression(allowConditional: false);
        Expr? filter = TryKeyword("if") ? Expression() : null;
        EndBlock();
        var body = ParseBody(["else", "endfor"], out var end);
        List<Node>? elseBody = null;
        if (end == "else")
        {
            Identifier();
            EndBlock();
            elseBody = ParseBody(["endfor"], out end);
        }

        if (end != "endfor")
        {
            throw new TemplateSyntaxException("'{% for %}' is never closed with '{% endfor %}'", at);
        }

        Identifier();
        EndBlock();
        return new ForNode(targets, iterable, filter, body, elseBody, at);
    }

    private void EndBlock()
    {
        SkipSpaces();
        var strip = TryConsume("-");
        if (!TryConsume("%}"))
        {
            throw _position >= _source.Length
                ? new TemplateSyntaxException("'{%' is never closed with '%}'", _position)
                : new TemplateSyntaxException($"unexpected '{_source[_position]}'; expected '%}}'", _position);
        }

        _trimNextText = strip;
        TrimBlockNewline(strip);
    }

    // trim_blocks: the first newline after a block tag is removed.
    private void TrimBlockNewline(bool stripAll)
    {
        if (!stripAll && _position < _source.Length && _source[_position] == '\n')
        {
            _position++;
        }
        else if (!stripAll && _position + 1 < _source.Length && _source[_position] == '\r' && _source[_position + 1] == '\n')
        {
            _position += 2;
        }
    }

    // As Orquesta finds expressions: the text up to the first '%>', quotes or not.
    private YaqlExpr Yaql(int openedAt)
    {
        var close = _source.IndexOf("%>", _position, StringComparison.Ordinal);
        if (close < 0)
        {
            throw new TemplateSyntaxException($"'<%' at character {openedAt + 1} is never closed with '%>'", openedAt);
        }

        var text = _source[_position..close];
        var root = Expressions.Yaql.YaqlParser.Parse(text, _position);
        _position = close + 2;
        return new YaqlExpr(text, openedAt) { Root = root };
    }

    private void ExpectClose(string close, int openedAt)
    {
        SkipSpaces();
        var strip = TryConsume("-");
        if (!TryConsume(close))
        {
            throw _position >= _source.Length
                ? new TemplateSyntaxException($"'{(close == "}}" ? "{{" : "<%")}' is never closed with '{close}'", openedAt)
                : new TemplateSyntaxException($"unexpected '{_source[_position]}' in expression; expected '{close}'", _position);
        }

        _trimNextText = strip;
    }

    private void FlushText(List<Node> nodes, StringBuilder text, bool stripEnd, bool lstrip)
    {
        var value = text.ToString();
        if (_trimNextText)
        {
            value = value.TrimStart();
            _trimNextText = false;
        }

        if (stripEnd)
        {
            value = value.TrimEnd();
        }
        else if (lstrip)
        {
            // lstrip_blocks: spaces and tabs between the start of a line and a block tag are removed.
            var lineStart = value.LastIndexOf('\n') + 1;
            if (value[lineStart..].All(c => c is ' ' or '\t'))
            {
                value = value[..lineStart];
            }
        }

        if (value.Length > 0)
        {
            nodes.Add(new TextNode(value));
        }

        text.Clear();
    }

    private int NextTagStart(int from)
    {
        for (var i = from; i < _source.Length - 1; i++)
        {
            var c = _source[i];
            var n = _source[i + 1];
            if ((c == '{' && n is '{' or '%' or '#') || (_orquesta && c == '<' && n == '%'))
            {
                return i;
            }
        }

        return -1;
    }

    // ---- expressions -------------------------------------------------------------------------------------------

    private Expr Expression(bool allowConditional = true)
    {
        if (++_depth > MaxNesting)
        {
            throw new TemplateSyntaxException($"expression nested deeper than {MaxNesting}", _position);
        }

        try
        {
            var start = SkipSpaces();
            var expr = Binary(1);
            if (allowConditional && TryKeyword("if"))
            {
                var condition = Binary(1);
                Expr? otherwise = TryKeyword("else") ? Expression() : null;
                return new ConditionalExpr(expr, condition, otherwise, start);
            }

            return expr;
        }
        finally
        {
            _depth--;
        }
    }

    private Expr Binary(int minPrecedence)
    {
        var left = minPrecedence <= 3 ? Not() : Unary();
        while (true)
        {
            var save = _position;
            var op = BinaryOperator();
            if (op is null || BinaryPrecedence[op] < minPrecedence)
            {
                _position = save;
                return left;
            }

            var precedence = BinaryPrecedence[op];
            var right = Binary(precedence + 1);
            left = new BinaryExpr(op, left, right, save);
        }
    }

    private Expr Not()
    {
        var start = SkipSpaces();
        if (TryKeyword("not"))
        {
            return new UnaryExpr("not", Not(), start);
        }

        return Binary(4);
    }

    private string? BinaryOperator()
    {
        SkipSpaces();
        foreach (var symbol in new[] { "==", "!=", "<=", ">=", "//", "<", ">", "+", "-", "*", "/", "%", "~" })
        {
            if (Peek(symbol) && !(symbol == "%" && (Peek("%>") || Peek("%}"))) && !(symbol == "*" && Peek("**")) && !(symbol == "-" && (Peek("-}}") || Peek("-%}"))))
            {
                _position += symbol.Length;
                return symbol;
            }
        }

        var save = _position;
        var word = Identifier();
        switch (word)
        {
            case "and" or "or" or "in":
                return word;
            case "not":
                SkipSpaces();
                if (TryKeyword("in"))
                {
                    return "not in";
                }

                break;
        }

        _position = save;
        return null;
    }

    private Expr Unary()
    {
        var start = SkipSpaces();
        if (TryConsume("-"))
        {
            return Filters(new UnaryExpr("-", Unary(), start));
        }

        if (TryConsume("+"))
        {
            return Filters(Unary());
        }

        var expr = Filters(Postfix(Primary()));
        while (true)
        {
            SkipSpaces();
            if (!Peek("**"))
            {
                return expr;
            }

            _position += 2;
            expr = new BinaryExpr("**", expr, Filters(Postfix(Primary())), start);
        }
    }

    private Expr Filters(Expr expr)
    {
        while (true)
        {
            SkipSpaces();
            var at = _position;
            if (TryConsume("|") )
            {
                SkipSpaces();
                var name = Identifier() ?? throw new TemplateSyntaxException("expected a filter name after '|'", _position);
                var (args, kwargs) = Peek("(") ? Arguments() : ([], new Dictionary<string, Expr>());
                expr = new FilterExpr(expr, name, args, kwargs, at);
                continue;
            }

            var save = _position;
            if (TryKeyword("is"))
            {
                var negated = TryKeyword("not");
                SkipSpaces();
                var name = Identifier() ?? throw new TemplateSyntaxException("expected a test name after 'is'", _position);
                IReadOnlyList<Expr> args = [];
                if (Peek("("))
                {
                    args = Arguments().Args;
                }
                else if (name is "sameas" or "divisibleby" or "equalto" or "eq" or "ne" or "lt" or "gt" or "le" or "ge")
                {
                    args = [Unary()];
                }

                expr = new TestExpr(expr, name, negated, args, at);
                continue;
            }

            _position = save;
            return expr;
        }
    }

    private Expr Postfix(Expr expr)
    {
        while (true)
        {
            var at = _position;
            if (TryConsume("."))
            {
                var name = Identifier() ?? (IntegerText() is { } digits ? digits : throw new TemplateSyntaxException("expected a name after '.'", _position));
                if (Peek("("))
                {
                    expr = new CallExpr(expr, name, Arguments().Args, at);
                }
                else
                {
                    expr = new AttributeExpr(expr, name, at);
                }
            }
            else if (TryConsume("["))
            {
                expr = Subscript(expr, at);
            }
            else if (Peek("(") && expr is NameExpr function)
            {
                expr = function.Name == "st2kv" && Arguments() is var (args, kwargs)
                    ? new CallExpr(null, function.Name, args, function.Offset) { Kwargs = kwargs }
                    : new CallExpr(null, function.Name, CallArguments(function.Name), function.Offset);
            }
            else
            {
                return expr;
            }
        }
    }

    private Expr Subscript(Expr target, int at)
    {
        SkipSpaces();
        Expr? start = Peek(":") ? null : Expression();
        SkipSpaces();
        if (!TryConsume(":"))
        {
            Expect("]");
            return new IndexExpr(target, start!, at);
        }

        SkipSpaces();
        Expr? stop = Peek(":") || Peek("]") ? null : Expression();
        Expr? step = null;
        SkipSpaces();
        if (TryConsume(":"))
        {
            SkipSpaces();
            step = Peek("]") ? null : Expression();
        }

        SkipSpaces();
        Expect("]");
        return new SliceExpr(target, start, stop, step, at);
    }

    // Orquesta writes ctx(name), item(name) and task_status(name) with a bare name: it means the string.
    private IReadOnlyList<Expr> CallArguments(string function)
    {
        if (function is "ctx" or "item" or "task_status")
        {
            var save = _position;
            _position++;
            SkipSpaces();
            var at = _position;
            var bare = Identifier();
            SkipSpaces();
            if (bare is not null && TryConsume(")"))
            {
                return [new LiteralExpr(bare, at)];
            }

            _position = save;
        }

        return Arguments().Args;
    }

    private (IReadOnlyList<Expr> Args, IReadOnlyDictionary<string, Expr> Kwargs) Arguments()
    {
        Expect("(");
        var args = new List<Expr>();
        var kwargs = new Dictionary<string, Expr>(StringComparer.Ordinal);
        SkipSpaces();
        if (TryConsume(")"))
        {
            return (args, kwargs);
        }

        do
        {
            SkipSpaces();
            var save = _position;
            var name = Identifier();
            SkipSpaces();
            if (name is not null && Peek("=") && !Peek("=="))
            {
                _position++;
                kwargs[name] = Expression();
            }
            else
            {
                _position = save;
                if (kwargs.Count > 0)
                {
                    throw new TemplateSyntaxException("a positional argument cannot follow a keyword argument", _position);
                }

                args.Add(Expression());
            }

            SkipSpaces();
        }
        while (TryConsume(","));

        Expect(")");
        return (args, kwargs);
    }

    private Expr Primary()
    {
        var start = SkipSpaces();
        if (_position >= _source.Length)
        {
            throw new TemplateSyntaxException("expected an expression", _position);
        }

        var c = _source[_position];
        if (c is '\'' or '"')
        {
            var text = PayloadPath.ReadQuoted(_source, ref _position);
            // Adjacent string literals concatenate, as in Python and Jinja.
            while (SkipSpaces() < _source.Length && _source[_position] is '\'' or '"')
            {
                text += PayloadPath.ReadQuoted(_source, ref _position);
            }

            return new LiteralExpr(text, start);
        }

        if (char.IsAsciiDigit(c) || (c == '.' && _position + 1 < _source.Length && char.IsAsciiDigit(_source[_position + 1])))
        {
            return Number(start);
        }

        if (TryConsume("("))
        {
            var inner = Expression();
            SkipSpaces();
            if (TryConsume(","))
            {
                var items = new List<Expr> { inner };
                SkipSpaces();
                while (!Peek(")"))
                {
                    items.Add(Expression());
                    SkipSpaces();
                    if (!TryConsume(","))
                    {
                        break;
                    }

                    SkipSpaces();
                }

                Expect(")");
                return new ListExpr(items, start);
            }

            Expect(")");
            return inner;
        }

        if (TryConsume("["))
        {
            var items = new List<Expr>();
            SkipSpaces();
            while (!TryConsume("]"))
            {
                items.Add(Expression());
                SkipSpaces();
                if (!TryConsume(","))
                {
                    Expect("]");
                    break;
                }

                SkipSpaces();
            }

            return new ListExpr(items, start);
        }

        if (TryConsume("{"))
        {
            var items = new List<(Expr, Expr)>();
            SkipSpaces();
            while (!TryConsume("}"))
            {
                var key = Expression();
                SkipSpaces();
                Expect(":");
                items.Add((key, Expression()));
                SkipSpaces();
                if (!TryConsume(","))
                {
                    Expect("}");
                    break;
                }

                SkipSpaces();
            }

            return new DictExpr(items, start);
        }

        if (TryConsume("$"))
        {
            // YAQL's $ is the workflow context, ctx().
            return new CallExpr(null, "ctx", [], start);
        }

        var name = Identifier() ?? throw new TemplateSyntaxException($"unexpected '{c}'; expected an expression", start);
        return name switch
        {
            "true" or "True" => new LiteralExpr(true, start),
            "false" or "False" => new LiteralExpr(false, start),
            "none" or "None" or "null" => new LiteralExpr(null, start),
            _ => new NameExpr(name, start),
        };
    }

    private LiteralExpr Number(int start)
    {
        var end = _position;
        while (end < _source.Length && (char.IsAsciiDigit(_source[end]) || _source[end] == '_'))
        {
            end++;
        }

        var isFloat = false;
        if (end < _source.Length && _source[end] == '.' && end + 1 < _source.Length && char.IsAsciiDigit(_source[end + 1]))
        {
            isFloat = true;
            end++;
            while (end < _source.Length && char.IsAsciiDigit(_source[end]))
            {
                end++;
            }
        }

        if (end < _source.Length && _source[end] is 'e' or 'E')
        {
            var exponentEnd = end + 1;
            if (exponentEnd < _source.Length && _source[exponentEnd] is '+' or '-')
            {
                exponentEnd++;
            }

            if (exponentEnd < _source.Length && char.IsAsciiDigit(_source[exponentEnd]))
            {
                isFloat = true;
                end = exponentEnd;
                while (end < _source.Length && char.IsAsciiDigit(_source[end]))
                {
                    end++;
                }
            }
        }

        var text = _source[_position..end].Replace("_", "", StringComparison.Ordinal);
        _position = end;
        if (!isFloat && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var l))
        {
            return new LiteralExpr(l, start);
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
            ? new LiteralExpr(d, start)
            : throw new TemplateSyntaxException($"invalid number '{text}'", start);
    }

    private string? IntegerText()
    {
        var start = _position;
        while (_position < _source.Length && char.IsAsciiDigit(_source[_position]))
        {
            _position++;
        }

        return _position > start ? _source[start.._position] : null;
    }

    private string? Identifier() => PayloadPath.ReadIdentifier(_source, ref _position);

    private bool TryKeyword(string keyword)
    {
        SkipSpaces();
        var save = _position;
        if (Identifier() == keyword)
        {
            return true;
        }

        _position = save;
        return false;
    }

    private int SkipSpaces()
    {
        PayloadPath.SkipSpaces(_source, ref _position);
        return _position;
    }

    private bool Peek(string token) => _position + token.Length <= _source.Length && string.CompareOrdinal(_source, _position, token, 0, token.Length) == 0;

    private bool TryConsume(string token)
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
        SkipSpaces();
        if (!TryConsume(token))
        {
            throw _position >= _source.Length
                ? new TemplateSyntaxException($"expected '{token}' but the template ended", _position)
                : new TemplateSyntaxException($"unexpected '{_source[_position]}'; expected '{token}'", _position);
        }
    }
}
