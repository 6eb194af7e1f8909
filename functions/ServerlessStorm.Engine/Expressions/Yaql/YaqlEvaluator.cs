using System.Diagnostics;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Expressions.Yaql;

/// <summary>What went wrong while a YAQL expression was evaluated, in the terms YAQL itself uses.</summary>
public enum YaqlErrorKind
{
    /// <summary>No function or method of that name, or none that takes these arguments.</summary>
    NoFunction,

    /// <summary>A key, index, conversion or other runtime failure.</summary>
    Runtime,
}

/// <summary>A YAQL evaluation error, before the template wraps it with the expression's text.</summary>
public sealed class YaqlException(YaqlErrorKind kind, string message, int offset) : Exception(message)
{
    public YaqlErrorKind Kind { get; } = kind;

    public int Offset { get; } = offset;
}

/// <summary>
/// Variables of one YAQL scope: <c>$</c> (the empty name), <c>$name</c>, <c>$1</c>…; a lambda or <c>let</c> opens a
/// child scope. A scope is also a value: <c>let(x =&gt; 1)</c> returns one and <c>-&gt;</c> evaluates its right side in it.
/// </summary>
internal sealed class YaqlScope(YaqlScope? parent)
{
    // A lambda's scope holds only $ (and $1, the same value): kept in fields, the map is made only when needed.
    private Dictionary<string, object?>? _values;
    private object? _dollar;
    private bool _hasDollar;

    public YaqlScope? Parent { get; } = parent;

    public object? this[string name]
    {
        get
        {
            for (var scope = this; scope is not null; scope = scope.Parent)
            {
                if (scope._hasDollar && name is "" or "1")
                {
                    return scope._dollar;
                }

                if (scope._values is not null && scope._values.TryGetValue(name, out var value))
                {
                    return value;
                }
            }

            return null;
        }

        set => (_values ??= new(StringComparer.Ordinal))[name] = value;
    }

    public static YaqlScope ForItem(YaqlScope parent, object? item) => new(parent) { _dollar = item, _hasDollar = true };
}

/// <summary>
/// Evaluates YAQL over the expression model of <see cref="Py"/> (null, bool, long, double, string, list, dict),
/// with the YAQL standard library and Orquesta's workflow functions. Bounded like the Jinja evaluator: steps are
/// timed, collections are capped in size.
/// </summary>
internal sealed class YaqlEvaluator
{
    private readonly long _started = Stopwatch.GetTimestamp();
    private int _steps;
    private long _built;
    private int _depth;

    public YaqlEvaluator(TemplateScope scope)
    {
        Scope = scope;
        Limits = scope.Limits;
    }

    public TemplateScope Scope { get; }

    public ExpressionLimits Limits { get; }

    /// <summary>Evaluates an expression at the workflow root, where <c>$</c> is null as in Orquesta.</summary>
    public object? Evaluate(YaqlNode node) => Evaluate(node, new YaqlScope(null));

    public object? Evaluate(YaqlNode node, YaqlScope scope)
    {
        if (++_steps % 256 == 0 && Stopwatch.GetElapsedTime(_started) > Limits.Timeout)
        {
            throw new ExpressionLimitException($"the expression took longer than {Limits.Timeout.TotalMilliseconds:0} ms");
        }

        if (++_depth > Limits.MaxDepth * 4)
        {
            throw new ExpressionLimitException($"the expression recursed deeper than {Limits.MaxDepth * 4} levels");
        }

        try
        {
            return node switch
            {
                YaqlConstant constant => constant.Value,
                YaqlKeyword keyword => keyword.Name,
                YaqlVariable variable => scope[variable.Name],
                YaqlList list => CheckSize(list.Items.Select(i => Evaluate(i, scope)).ToList(), list.Offset),
                YaqlMap map => BuildMap(map, scope),
                YaqlIndex index => Index(index, scope),
                YaqlCall call => Call(call, scope, receiver: null, hasReceiver: false),
                YaqlUnary unary => Unary(unary, scope),
                YaqlBinary binary => Binary(binary, scope),
                YaqlMapping mapping => throw new YaqlException(YaqlErrorKind.NoFunction, $"'=>' is only allowed in an argument list or a map (at character {mapping.Offset + 1})", mapping.Offset),
                _ => throw new InvalidOperationException(node.GetType().Name),
            };
        }
        finally
        {
            _depth--;
        }
    }

    /// <summary>A lambda over an argument: evaluated with <c>$</c> and <c>$1</c>… bound to the values it is called with.</summary>
    public Func<object?[], object?> Lambda(YaqlNode node, YaqlScope scope) => args =>
    {
        if (args.Length == 1)
        {
            return Evaluate(node, YaqlScope.ForItem(scope, args[0]));
        }

        var inner = new YaqlScope(scope);
        if (args.Length > 0)
        {
            inner[""] = args[0];
        }

        for (var i = 0; i < args.Length; i++)
        {
            inner[(i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)] = args[i];
        }

        return Evaluate(node, inner);
    };

    /// <summary>Refuses, before it is built, a value of <paramref name="count"/> items (or characters / 10).</summary>
    public void Reserve(long count, int offset)
    {
        if (count > Limits.MaxCollectionLength)
        {
            throw new ExpressionLimitException($"a value at character {offset + 1} would be over the size limit of {Limits.MaxCollectionLength}");
        }
    }

    /// <summary>Bounds one value, and what the whole evaluation builds (nested queries multiply sizes).</summary>
    public T CheckSize<T>(T value, int offset)
    {
        var size = value switch
        {
            List<object?> l => l.Count,
            OrderedDictionary<string, object?> d => d.Count,
            string s => s.Length / 10,
            _ => 0,
        };
        if (size > Limits.MaxCollectionLength)
        {
            throw new ExpressionLimitException($"a value at character {offset + 1} is over the size limit of {Limits.MaxCollectionLength}");
        }

        _built += size;
        return _built > 10L * Limits.MaxCollectionLength
            ? throw new ExpressionLimitException($"the expression built more than {10L * Limits.MaxCollectionLength} items in all (at character {offset + 1})")
            : value;
    }

    public static YaqlException NoFunction(string message, int offset) => new(YaqlErrorKind.NoFunction, $"{message} (at character {offset + 1})", offset);

    public static YaqlException Fail(string message, int offset) => new(YaqlErrorKind.Runtime, $"{message} (at character {offset + 1})", offset);

    private OrderedDictionary<string, object?> BuildMap(YaqlMap map, YaqlScope scope)
    {
        var result = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var node in map.Items)
        {
            var item = node as YaqlMapping ?? throw NoFunction("a map holds 'key => value' pairs; this item has no '=>'", node.Offset);
            result[YaqlValues.Key(Evaluate(item.Key, scope), item.Key.Offset)] = Evaluate(item.Value, scope);
        }

        return CheckSize(result, map.Offset);
    }

    private object? Index(YaqlIndex index, YaqlScope scope)
    {
        var target = Evaluate(index.Target, scope);
        var args = index.Args.Select(a => a is YaqlMapping ? throw NoFunction("an index takes no 'name => value'", a.Offset) : Evaluate(a, scope)).ToList();
        switch (target, args)
        {
            case (YaqlLazy, _):
                throw NoFunction("a query result (select, where, orderBy, keys, …) cannot be indexed; add .toList() before [ ]", index.Offset);
            case (List<object?> list, [long i]):
                var at = i < 0 ? list.Count + i : i;
                return at >= 0 && at < list.Count ? list[(int)at] : throw Fail($"index {i} is out of range for a list of {list.Count}", index.Offset);
            case (OrderedDictionary<string, object?> dict, [var key]):
                return dict.TryGetValue(YaqlValues.Key(key, index.Offset), out var value) ? value : throw Fail($"key {YaqlValues.Repr(key)} is not in the dict", index.Offset);
            case (OrderedDictionary<string, object?> dict, [var key, var fallback]):
                return dict.TryGetValue(YaqlValues.Key(key, index.Offset), out var found) ? found : fallback;
            default:
                throw NoFunction($"cannot index {YaqlValues.TypeName(target)} with [{string.Join(", ", args.Select(YaqlValues.TypeName))}]", index.Offset);
        }
    }

    private object? Unary(YaqlUnary unary, YaqlScope scope)
    {
        var operand = Evaluate(unary.Operand, scope);
        return unary.Op switch
        {
            "not" => !YaqlValues.Truthy(operand),
            "-" => operand switch
            {
                long l => l == long.MinValue ? -(double)l : (object)-l,
                double d => -d,
                _ => throw NoFunction($"unary '-' takes a number, not {YaqlValues.TypeName(operand)}", unary.Offset),
            },
            _ => YaqlValues.IsNumber(operand) ? operand : throw NoFunction($"unary '+' takes a number, not {YaqlValues.TypeName(operand)}", unary.Offset),
        };
    }

    private object? Binary(YaqlBinary binary, YaqlScope scope)
    {
        switch (binary.Op)
        {
            case "and":
                var left = Evaluate(binary.Left, scope);
                return YaqlValues.Truthy(left) ? Evaluate(binary.Right, scope) : left;
            case "or":
                var first = Evaluate(binary.Left, scope);
                return YaqlValues.Truthy(first) ? first : Evaluate(binary.Right, scope);
            case "." or "?.":
                var receiver = Evaluate(binary.Left, scope);
                return binary.Op == "?." && receiver is null ? null : Dot(receiver, binary.Right, scope, binary.Offset);
            case "->":
                var context = Evaluate(binary.Left, scope) as YaqlScope
                    ?? throw NoFunction("the left side of '->' must be a context such as let(…) gives", binary.Offset);
                return Evaluate(binary.Right, context);
        }

        var a = Evaluate(binary.Left, scope);
        var b = Evaluate(binary.Right, scope);
        return YaqlOperators.Apply(binary.Op, a, b, binary.Offset, this);
    }

    private object? Dot(object? receiver, YaqlNode right, YaqlScope scope, int offset)
    {
        switch (right)
        {
            case YaqlCall call:
                return Call(call, scope, receiver, hasReceiver: true);
            case YaqlKeyword keyword when receiver is OrderedDictionary<string, object?> dict:
                return dict.TryGetValue(keyword.Name, out var value) ? value : throw Fail($"key '{keyword.Name}' is not in the dict (it has: {string.Join(", ", dict.Keys)})", keyword.Offset);
            case YaqlKeyword keyword when receiver is List<object?> list:
                // On a list, the key of each item, as YAQL's collection attribution does.
                return list.Select(item => Dot(item, keyword, scope, offset)).ToList();
            case YaqlKeyword keyword:
                return YaqlFunctions.Property(receiver, keyword.Name, keyword.Offset);
            default:
                return Lambda(right, scope)([receiver]);
        }
    }

    private object? Call(YaqlCall call, YaqlScope scope, object? receiver, bool hasReceiver)
    {
        try
        {
            return YaqlFunctions.Invoke(new YaqlInvocation(this, scope, call, receiver, hasReceiver));
        }
        catch (PyTypeError ex)
        {
            throw Fail(ex.Message, call.Offset);
        }
        catch (ExpressionEvaluationException ex) when (ex.Offset == 0)
        {
            throw Fail(ex.Message, call.Offset);
        }
    }
}

/// <summary>One call of a YAQL function: its receiver (for a method), its arguments unevaluated, and helpers to read them.</summary>
internal sealed class YaqlInvocation
{
    public YaqlInvocation(YaqlEvaluator evaluator, YaqlScope scope, YaqlCall call, object? receiver, bool hasReceiver)
    {
        Evaluator = evaluator;
        Scope = scope;
        Node = call;
        Receiver = receiver;
        HasReceiver = hasReceiver;
        // Most calls have no 'name => value' arguments: share the node's list and an empty map.
        if (call.Args.Any(a => a is YaqlMapping { Key: YaqlKeyword }))
        {
            Positional = [.. call.Args.Where(a => a is not YaqlMapping { Key: YaqlKeyword })];
            Named = call.Args.OfType<YaqlMapping>().Where(m => m.Key is YaqlKeyword).ToDictionary(m => ((YaqlKeyword)m.Key).Name, m => m.Value, StringComparer.Ordinal);
        }
        else
        {
            Positional = call.Args;
            Named = NoNamed;
        }
    }

    public YaqlEvaluator Evaluator { get; }

    public YaqlScope Scope { get; }

    public YaqlCall Node { get; }

    public string Name => Node.Name;

    public object? Receiver { get; private set; }

    public bool HasReceiver { get; private set; }

    private static readonly Dictionary<string, YaqlNode> NoNamed = new(StringComparer.Ordinal);

    public IReadOnlyList<YaqlNode> Positional { get; private set; }

    public IReadOnlyDictionary<string, YaqlNode> Named { get; }

    public int Count => Positional.Count;

    public int Offset => Node.Offset;

    /// <summary>An extension method called as a function: its first argument becomes the receiver.</summary>
    public void ShiftReceiver()
    {
        if (!HasReceiver && Positional.Count > 0)
        {
            Receiver = Arg(0);
            HasReceiver = true;
            Positional = Positional.Skip(1).ToList();
        }
    }

    public object? Arg(int i) => Evaluator.Evaluate(Positional[i], Scope);

    public object? Arg(int i, object? fallback) => i < Positional.Count ? Arg(i) : fallback;

    public List<object?> Args() => Positional.Select(p => Evaluator.Evaluate(p, Scope)).ToList();

    public bool HasNamed(string name) => Named.ContainsKey(name);

    public object? NamedArg(string name, object? fallback = null) => Named.TryGetValue(name, out var node) ? Evaluator.Evaluate(node, Scope) : fallback;

    public Func<object?[], object?> Lambda(int i) => Evaluator.Lambda(Positional[i], Scope);

    public Func<object?[], object?>? NamedLambda(string name) => Named.TryGetValue(name, out var node) ? Evaluator.Lambda(node, Scope) : null;

    public YaqlException NoMatch() => YaqlEvaluator.NoFunction(
        HasReceiver
            ? $"no method '{Name}' for a {YaqlValues.TypeName(Receiver)} receiver takes {Describe()}"
            : $"no function '{Name}' takes {Describe()}",
        Offset);

    public YaqlException Fail(string message) => YaqlEvaluator.Fail($"{Name}(): {message}", Offset);

    private string Describe() => Count == 0 && Named.Count == 0 ? "no arguments" : $"{Count} argument(s){(Named.Count > 0 ? $" and {string.Join(", ", Named.Keys.Select(k => k + " =>"))}" : "")}";
}
