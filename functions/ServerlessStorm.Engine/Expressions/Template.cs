using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Expressions.Syntax;

namespace ServerlessStorm.Engine.Expressions;

/// <summary>Which delimiters a template understands.</summary>
public enum TemplateDialect
{
    /// <summary>Jinja only, as in StackStorm rules and action parameters.</summary>
    Jinja,

    /// <summary>Jinja and Orquesta's <c>&lt;% … %&gt;</c>, as in workflows.</summary>
    Orquesta,
}

/// <summary>
/// A parsed template, compiled once and cached by its source. Only the template's own text is ever parsed: values
/// substituted into it are data and are never parsed again, so a payload holding <c>{{ 7*7 }}</c> stays that string.
/// </summary>
public sealed class Template
{
    private const int CacheLimit = 20_000;
    private static readonly ConcurrentDictionary<(string, TemplateDialect), Template> Cache = new();

    private Template(string source, IReadOnlyList<Node> nodes)
    {
        Source = source;
        Nodes = nodes;
        DatastoreKeys = FindDatastoreKeys(nodes);
        ReferencedNames = FindNames(nodes);
    }

    /// <summary>The variable names the template reads (<c>trigger</c>, parameter names, …).</summary>
    public IReadOnlySet<string> ReferencedNames { get; }

    public string Source { get; }

    internal IReadOnlyList<Node> Nodes { get; }

    /// <summary>True when the whole template is one expression, whose value keeps its type when evaluated.</summary>
    public bool IsSingleExpression => Nodes is [OutputNode];

    /// <summary>The datastore keys the template names literally (<c>st2kv.system.NAME</c>, YAQL's <c>st2kv('system.NAME')</c>), for a host to fetch first.</summary>
    public IReadOnlyList<(string Scope, string Name)> DatastoreKeys { get; }

    public static bool LooksLikeTemplate(string text, TemplateDialect dialect = TemplateDialect.Jinja) =>
        text.Contains("{{", StringComparison.Ordinal) || text.Contains("{%", StringComparison.Ordinal) || text.Contains("{#", StringComparison.Ordinal)
        || (dialect == TemplateDialect.Orquesta && text.Contains("<%", StringComparison.Ordinal));

    /// <summary>Parses (or takes from the cache) a template; throws <see cref="TemplateSyntaxException"/> with the position.</summary>
    public static Template Parse(string source, TemplateDialect dialect = TemplateDialect.Jinja)
    {
        if (Cache.TryGetValue((source, dialect), out var cached))
        {
            return cached;
        }

        var parsed = new Template(source, TemplateParser.ParseTemplate(source, dialect == TemplateDialect.Orquesta));
        if (Cache.Count >= CacheLimit)
        {
            Cache.Clear();
        }

        Cache[(source, dialect)] = parsed;
        return parsed;
    }

    /// <summary>Renders to text, as Jinja does.</summary>
    public string Render(TemplateScope scope)
    {
        var sink = new TextSink(scope.Limits.MaxOutputLength);
        new Evaluator(scope).Render(Nodes, sink);
        return sink.ToString();
    }

    /// <summary>Renders to a value in the expression model: a single expression keeps its type, anything else is text.</summary>
    public object? EvaluateValue(TemplateScope scope)
    {
        if (Nodes is [OutputNode output])
        {
            var value = new Evaluator(scope).Evaluate(output.Expression);
            return value is Undefined undefined
                ? throw new ExpressionEvaluationException($"'{undefined.Name}' is undefined (at character {output.Expression.Offset + 1})", output.Expression.Offset)
                : value;
        }

        return Render(scope);
    }

    /// <summary>Renders to JSON: a single expression keeps its type, anything else is a string.</summary>
    public JsonNode? Evaluate(TemplateScope scope) => Py.ToJson(EvaluateValue(scope));

    internal void RenderTo(TemplateScope scope, IOutputSink sink) => new Evaluator(scope).Render(Nodes, sink);

    private static HashSet<string> FindNames(IReadOnlyList<Node> nodes)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        Walk(nodes, e =>
        {
            if (e is NameExpr name)
            {
                names.Add(name.Name);
            }

            return true;
        });
        return names;
    }

    private static List<(string, string)> FindDatastoreKeys(IReadOnlyList<Node> nodes)
    {
        var keys = new List<(string, string)>();
        Walk(nodes, e =>
        {
            if (e is YaqlExpr yaql)
            {
                keys.AddRange(Yaql.YaqlDatastoreKeys.Find(yaql.Root));
                return false;
            }

            if (e is AttributeExpr { Target: AttributeExpr { Target: NameExpr { Name: "st2kv" }, Name: var scope }, Name: var name })
            {
                keys.Add((scope, name));
                return false;
            }

            // Orquesta's st2kv('system.name') / st2kv('name') (the user's own).
            if (e is CallExpr { Target: null, Name: "st2kv", Args: [LiteralExpr { Value: string key }, ..] })
            {
                keys.Add(key.StartsWith("system.", StringComparison.Ordinal) ? ("system", key["system.".Length..]) : ("user", key));
            }

            return true;
        });
        return [.. keys.Distinct()];
    }

    /// <summary>Visits every expression; <paramref name="visit"/> returns false to skip an expression's children.</summary>
    private static void Walk(IReadOnlyList<Node> nodes, Func<Expr, bool> visit)
    {
        void VisitExpr(Expr? e)
        {
            if (e is null || !visit(e))
            {
                return;
            }

            switch (e)
            {
                case AttributeExpr a: VisitExpr(a.Target); break;
                case IndexExpr i: VisitExpr(i.Target); VisitExpr(i.Index); break;
                case SliceExpr s: VisitExpr(s.Target); VisitExpr(s.Start); VisitExpr(s.Stop); VisitExpr(s.Step); break;
                case UnaryExpr u: VisitExpr(u.Operand); break;
                case BinaryExpr b: VisitExpr(b.Left); VisitExpr(b.Right); break;
                case ConditionalExpr c: VisitExpr(c.Then); VisitExpr(c.Condition); VisitExpr(c.Else); break;
                case FilterExpr f: VisitExpr(f.Target); f.Args.ToList().ForEach(VisitExpr); f.Kwargs.Values.ToList().ForEach(VisitExpr); break;
                case TestExpr t: VisitExpr(t.Target); t.Args.ToList().ForEach(VisitExpr); break;
                case CallExpr c: VisitExpr(c.Target); c.Args.ToList().ForEach(VisitExpr); break;
                case ListExpr l: l.Items.ToList().ForEach(VisitExpr); break;
                case DictExpr d: d.Items.ToList().ForEach(p => { VisitExpr(p.Key); VisitExpr(p.Value); }); break;
            }
        }

        void VisitNodes(IReadOnlyList<Node> body)
        {
            foreach (var node in body)
            {
                switch (node)
                {
                    case OutputNode o: VisitExpr(o.Expression); break;
                    case IfNode i: i.Branches.ToList().ForEach(b => { VisitExpr(b.Condition); VisitNodes(b.Body); }); if (i.Else is not null) { VisitNodes(i.Else); } break;
                    case ForNode f: VisitExpr(f.Iterable); VisitExpr(f.Filter); VisitNodes(f.Body); if (f.Else is not null) { VisitNodes(f.Else); } break;
                    case SetNode s: VisitExpr(s.Value); break;
                }
            }
        }

        VisitNodes(nodes);
    }

    private sealed class TextSink(int limit) : IOutputSink
    {
        private readonly StringBuilder _text = new();

        public void Text(string text) => Append(text);

        public void Value(object? value) => Append(Py.Str(value));

        public override string ToString() => _text.ToString();

        private void Append(string text)
        {
            if (_text.Length + text.Length > limit)
            {
                throw new ExpressionLimitException($"the output is over the {limit} character limit");
            }

            _text.Append(text);
        }
    }
}
