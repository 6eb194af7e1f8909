using System.Diagnostics;
using System.Text;
using ServerlessStorm.Engine.Expressions.Syntax;

namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>Receives a render's output: literal template text and the values of expressions.</summary>
internal interface IOutputSink
{
    void Text(string text);

    void Value(object? value);
}

/// <summary>
/// Evaluates parsed templates in a sandbox: only data is reachable (variables, the datastore, the workflow
/// functions, a fixed set of filters, tests and side-effect-free methods — never .NET members), and every render is
/// bounded in output, loop iterations and time. Undefined values are strict, as in StackStorm: they may be tested
/// (<c>is defined</c>) or defaulted (<c>| default</c>), and using one in any other way is an error.
/// </summary>
internal sealed partial class Evaluator
{
    private readonly TemplateScope _scope;
    private readonly ExpressionLimits _limits;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<Dictionary<string, object?>> _frames = [new(StringComparer.Ordinal)];
    private int _iterations;
    private int _steps;

    public Evaluator(TemplateScope scope)
    {
        _scope = scope;
        _limits = scope.Limits;
    }

    public void Render(IReadOnlyList<Node> nodes, IOutputSink sink)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode text:
                    sink.Text(text.Text);
                    break;
                case OutputNode output:
                    var value = Evaluate(output.Expression);
                    if (value is Undefined undefined)
                    {
                        throw Fail($"'{undefined.Name}' is undefined", output.Expression.Offset);
                    }

                    sink.Value(value);
                    break;
                case IfNode conditional:
                    var taken = false;
                    foreach (var (condition, body) in conditional.Branches)
                    {
                        if (Truthy(Evaluate(condition), condition.Offset))
                        {
                            Render(body, sink);
                            taken = true;
                            break;
                        }
                    }

                    if (!taken && conditional.Else is { } otherwise)
                    {
                        Render(otherwise, sink);
                    }

                    break;
                case ForNode loop:
                    RenderFor(loop, sink);
                    break;
                case SetNode set:
                    _frames[^1][set.Name] = Evaluate(set.Value);
                    break;
            }
        }
    }

    public object? Evaluate(Expr expr)
    {
        if (++_steps % 512 == 0 && _clock.Elapsed > _limits.Timeout)
        {
            throw new ExpressionLimitException($"the template took longer than {_limits.Timeout.TotalMilliseconds:0} ms");
        }

        try
        {
            return expr switch
            {
                LiteralExpr literal => literal.Value,
                NameExpr name => Lookup(name),
                ListExpr list => CheckLength(list.Items.Select(Evaluate).ToList(), list.Offset),
                DictExpr dict => BuildDict(dict),
                AttributeExpr attribute => Attribute(Evaluate(attribute.Target), attribute.Name, attribute),
                IndexExpr index => Index(Evaluate(index.Target), Evaluate(index.Index), index),
                SliceExpr slice => Slice(slice),
                UnaryExpr unary => Unary(unary),
                BinaryExpr binary => Binary(binary),
                ConditionalExpr conditional => Truthy(Evaluate(conditional.Condition), conditional.Offset)
                    ? Evaluate(conditional.Then)
                    : conditional.Else is null ? new Undefined("the else branch") : Evaluate(conditional.Else),
                FilterExpr filter => ApplyFilter(filter),
                TestExpr test => ApplyTest(test),
                CallExpr call => Call(call),
                YaqlExpr yaql => EvaluateYaql(yaql),
                _ => throw Fail($"unsupported expression {expr.GetType().Name}", expr.Offset),
            };
        }
        catch (PyTypeError ex)
        {
            throw Fail(ex.Message, expr.Offset, ex);
        }
    }

    /// <summary>A Jinja filter applied to values already evaluated: how YAQL reaches StackStorm's functions (to_json_string, regex_match, …).</summary>
    internal static object? ApplyFilter(TemplateScope scope, string name, object? value, IEnumerable<object?> args, IEnumerable<KeyValuePair<string, object?>> named, int offset)
    {
        var filter = new FilterExpr(
            new LiteralExpr(value, offset),
            name,
            [.. args.Select(a => (Expr)new LiteralExpr(a, offset))],
            named.ToDictionary(p => p.Key, p => (Expr)new LiteralExpr(p.Value, offset), StringComparer.Ordinal),
            offset);
        return new Evaluator(scope).ApplyFilter(filter);
    }

    private object? EvaluateYaql(YaqlExpr yaql)
    {
        try
        {
            return Yaql.YaqlValues.ToModel(new Yaql.YaqlEvaluator(_scope).Evaluate(yaql.Root), yaql.Offset);
        }
        catch (Yaql.YaqlException ex)
        {
            throw new ExpressionEvaluationException($"<%{yaql.Text}%>: {ex.Message}", ex.Offset, ex);
        }
        catch (ExpressionEvaluationException ex) when (!ex.Message.StartsWith("<%", StringComparison.Ordinal))
        {
            throw new ExpressionEvaluationException($"<%{yaql.Text}%>: {ex.Message}", ex.Offset == 0 ? yaql.Offset : ex.Offset, ex);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException or OverflowException or PyTypeError
            or InvalidCastException or KeyNotFoundException or IndexOutOfRangeException or System.Text.RegularExpressions.RegexMatchTimeoutException)
        {
            throw new ExpressionEvaluationException($"<%{yaql.Text}%>: {ex.Message} (at character {yaql.Offset + 1})", yaql.Offset, ex);
        }
    }

    private void RenderFor(ForNode loop, IOutputSink sink)
    {
        var items = Iterate(Evaluate(loop.Iterable), loop.Iterable.Offset);
        var frame = new Dictionary<string, object?>(StringComparer.Ordinal);
        _frames.Add(frame);
        try
        {
            var selected = new List<object?>();
            foreach (var item in items)
            {
                if (loop.Filter is null)
                {
                    selected.Add(item);
                    continue;
                }

                Bind(loop, frame, item);
                if (Truthy(Evaluate(loop.Filter), loop.Filter.Offset))
                {
                    selected.Add(item);
                }
            }

            for (var i = 0; i < selected.Count; i++)
            {
                if (++_iterations > _limits.MaxLoopIterations)
                {
                    throw new ExpressionLimitException($"loops ran more than {_limits.MaxLoopIterations} iterations");
                }

                Bind(loop, frame, selected[i]);
                frame["loop"] = new OrderedDictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["index"] = (long)(i + 1),
                    ["index0"] = (long)i,
                    ["revindex"] = (long)(selected.Count - i),
                    ["revindex0"] = (long)(selected.Count - i - 1),
                    ["first"] = i == 0,
                    ["last"] = i == selected.Count - 1,
                    ["length"] = (long)selected.Count,
                };
                Render(loop.Body, sink);
            }

            if (selected.Count == 0 && loop.Else is { } otherwise)
            {
                Render(otherwise, sink);
            }
        }
        finally
        {
            _frames.RemoveAt(_frames.Count - 1);
        }
    }

    private void Bind(ForNode loop, Dictionary<string, object?> frame, object? item)
    {
        if (loop.Targets.Count == 1)
        {
            frame[loop.Targets[0]] = item;
            return;
        }

        if (item is not List<object?> parts || parts.Count != loop.Targets.Count)
        {
            throw Fail($"cannot unpack {Py.TypeName(item)} into {loop.Targets.Count} loop variables", loop.Offset);
        }

        for (var i = 0; i < parts.Count; i++)
        {
            frame[loop.Targets[i]] = parts[i];
        }
    }

    private IEnumerable<object?> Iterate(object? value, int offset) => value switch
    {
        List<object?> list => list,
        OrderedDictionary<string, object?> dict => dict.Keys.Cast<object?>(),
        string s => s.Select(c => (object?)c.ToString()),
        Undefined u => throw Fail($"'{u.Name}' is undefined", offset),
        _ => throw Fail($"'{Py.TypeName(value)}' object is not iterable", offset),
    };

    private object? Lookup(NameExpr name)
    {
        for (var i = _frames.Count - 1; i >= 0; i--)
        {
            if (_frames[i].TryGetValue(name.Name, out var local))
            {
                return local;
            }
        }

        if (name.Name == "st2kv")
        {
            return new DatastoreNamespace(null);
        }

        return _scope.TryGet(name.Name, out var value) ? value : new Undefined(name.Name);
    }

    private object? Attribute(object? target, string name, AttributeExpr expr) => target switch
    {
        OrderedDictionary<string, object?> dict => dict.TryGetValue(name, out var value) ? value : new Undefined($"{Describe(expr.Target)}.{name}"),
        List<object?> list when int.TryParse(name, out var i) => i < list.Count ? list[i] : new Undefined($"{Describe(expr.Target)}.{name}"),
        DatastoreNamespace { Scope: null } when name is "system" or "user" => new DatastoreNamespace(name),
        DatastoreNamespace { Scope: { } scope } => KeyValue(scope, name, expr.Offset),
        Undefined u => throw Fail($"'{u.Name}' is undefined", expr.Offset),
        _ => new Undefined($"{Describe(expr.Target)}.{name}"),
    };

    private object? Index(object? target, object? index, IndexExpr expr)
    {
        switch (target)
        {
            case Undefined u:
                throw Fail($"'{u.Name}' is undefined", expr.Offset);
            case OrderedDictionary<string, object?> dict:
                var key = index is string s ? s : Py.Str(index);
                return dict.TryGetValue(key, out var value) ? value : new Undefined($"{Describe(expr.Target)}[{Py.Repr(index)}]");
            case List<object?> list when index is long or bool:
                var i = Py.ToLong(index);
                i = i < 0 ? list.Count + i : i;
                return i >= 0 && i < list.Count ? list[(int)i] : new Undefined($"{Describe(expr.Target)}[{index}]");
            case string text when index is long or bool:
                var c = Py.ToLong(index);
                c = c < 0 ? text.Length + c : c;
                return c >= 0 && c < text.Length ? text[(int)c].ToString() : new Undefined($"{Describe(expr.Target)}[{index}]");
            case DatastoreNamespace ns when index is string name:
                return ns.Scope is null ? new DatastoreNamespace(name) : KeyValue(ns.Scope, name, expr.Offset);
            default:
                return new Undefined($"{Describe(expr.Target)}[{Py.Repr(index)}]");
        }
    }

    private object? Slice(SliceExpr slice)
    {
        var target = Evaluate(slice.Target);
        long? Bound(Expr? e) => e is null ? null : Evaluate(e) is var v && v is null ? null : Py.ToLong(v);
        var step = Bound(slice.Step) ?? 1;
        if (step == 0)
        {
            throw Fail("slice step cannot be zero", slice.Offset);
        }

        var length = target switch
        {
            List<object?> list => list.Count,
            string s => s.Length,
            Undefined u => throw Fail($"'{u.Name}' is undefined", slice.Offset),
            _ => throw Fail($"'{Py.TypeName(target)}' object is not subscriptable", slice.Offset),
        };
        var indexes = SliceIndexes(length, Bound(slice.Start), Bound(slice.Stop), step);
        return target is string text
            ? string.Concat(indexes.Select(i => text[i]))
            : indexes.Select(i => ((List<object?>)target!)[i]).ToList();
    }

    private static List<int> SliceIndexes(int length, long? start, long? stop, long step)
    {
        long Clamp(long v, long low, long high) => Math.Max(low, Math.Min(high, v < 0 ? v + length : v));
        var result = new List<int>();
        if (step > 0)
        {
            for (var i = start is null ? 0 : Clamp(start.Value, 0, length); i < (stop is null ? length : Clamp(stop.Value, 0, length)); i += step)
            {
                result.Add((int)i);
            }
        }
        else
        {
            for (var i = start is null ? length - 1 : Clamp(start.Value, -1, length - 1); i > (stop is null ? -1 : Clamp(stop.Value, -1, length - 1)); i += step)
            {
                result.Add((int)i);
            }
        }

        return result;
    }

    private object? Unary(UnaryExpr unary)
    {
        var operand = Evaluate(unary.Operand);
        return unary.Op switch
        {
            "not" => !Truthy(operand, unary.Offset),
            "-" => Py.Negate(Defined(operand, unary.Offset)),
            _ => throw Fail($"unknown operator {unary.Op}", unary.Offset),
        };
    }

    private object? Binary(BinaryExpr binary)
    {
        switch (binary.Op)
        {
            case "and":
                var left = Evaluate(binary.Left);
                return Truthy(left, binary.Left.Offset) ? Evaluate(binary.Right) : left;
            case "or":
                var first = Evaluate(binary.Left);
                return Truthy(first, binary.Left.Offset) ? first : Evaluate(binary.Right);
        }

        var a = Defined(Evaluate(binary.Left), binary.Left.Offset);
        var b = Defined(Evaluate(binary.Right), binary.Right.Offset);
        return binary.Op switch
        {
            "==" => Py.Equal(a, b),
            "!=" => !Py.Equal(a, b),
            "<" => Py.Compare(a, b, "<") < 0,
            ">" => Py.Compare(a, b, ">") > 0,
            "<=" => Py.Compare(a, b, "<=") <= 0,
            ">=" => Py.Compare(a, b, ">=") >= 0,
            "in" => Py.Contains(b, a),
            "not in" => !Py.Contains(b, a),
            "~" => CheckLength(Py.Str(a) + Py.Str(b), binary.Offset),
            "+" => CheckLength(Py.Add(a, b), binary.Offset),
            "-" => Py.Subtract(a, b),
            "*" => Py.Multiply(a, b, _limits.MaxOutputLength),
            "/" => Py.Divide(a, b),
            "//" => Py.FloorDivide(a, b),
            // A tuple literal on the right is the argument list (the parser reads a tuple as a list).
            "%" when a is string format => PyFormat.Format(format, b, binary.Right is ListExpr && b is List<object?>, _limits.MaxOutputLength),
            "%" => Py.Modulo(a, b),
            "**" => Py.Power(a, b),
            _ => throw Fail($"unknown operator {binary.Op}", binary.Offset),
        };
    }

    private OrderedDictionary<string, object?> BuildDict(DictExpr dict)
    {
        var result = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in dict.Items)
        {
            var k = Defined(Evaluate(key), key.Offset);
            result[k as string ?? Py.Str(k)] = Evaluate(value);
        }

        return CheckLength(result, dict.Offset);
    }

    private object? Call(CallExpr call)
    {
        if (call.Target is not null)
        {
            return Method(Evaluate(call.Target), call);
        }

        var args = call.Args.Select(a => Defined(Evaluate(a), a.Offset)).ToList();
        string? Name() => args.Count == 0 ? null : args[0] as string ?? throw Fail($"{call.Name}() takes a name (a string)", call.Offset);
        switch (call.Name)
        {
            case "range":
                return Range(args, call.Offset);
            case "len" when args.Count == 1:
                return (long)Length(args[0], call.Offset); // Python's len(), which Orquesta's YAQL also has
            case "st2kv":
                return St2kvFunction(args, call.Kwargs.ToDictionary(k => k.Key, k => Defined(Evaluate(k.Value), k.Value.Offset)), call.Offset);
        }

        var workflow = _scope.Workflow ?? throw Fail($"{call.Name}() is only available in workflows", call.Offset);
        return call.Name switch
        {
            "ctx" => workflow.Context(Name()),
            "result" => workflow.Result(),
            "item" => workflow.Item(Name()),
            "succeeded" => workflow.Succeeded(),
            "failed" => workflow.Failed(),
            "completed" => workflow.Completed(),
            "task_status" => workflow.TaskStatus(Name() ?? throw Fail("task_status() needs a task name", call.Offset)),
            _ => throw Fail($"unknown function '{call.Name}'", call.Offset),
        };
    }

    private List<object?> Range(List<object?> args, int offset)
    {
        var numbers = args.Select(Py.ToLong).ToArray();
        var (start, stop, step) = numbers.Length switch
        {
            1 => (0L, numbers[0], 1L),
            2 => (numbers[0], numbers[1], 1L),
            3 => (numbers[0], numbers[1], numbers[2]),
            _ => throw Fail("range() takes 1 to 3 integers", offset),
        };
        if (step == 0)
        {
            throw Fail("range() step must not be zero", offset);
        }

        var count = Math.Max(0, (stop - start + step + (step > 0 ? -1 : 1)) / step);
        if (count > _limits.MaxCollectionLength)
        {
            throw new ExpressionLimitException($"range() of {count} items is over the {_limits.MaxCollectionLength} limit");
        }

        var result = new List<object?>((int)count);
        for (var i = 0L; i < count; i++)
        {
            result.Add(start + (i * step));
        }

        return result;
    }

    private object? KeyValue(string scope, string name, int offset)
    {
        var lookup = _scope.KeyValues ?? throw Fail($"st2kv.{scope}.{name}: no datastore is available here", offset);
        return lookup.Get(scope, name) ?? "";
    }

    private bool Truthy(object? value, int offset) =>
        value is Undefined u ? throw Fail($"'{u.Name}' is undefined", offset) : Py.Truthy(value);

    private object? Defined(object? value, int offset) =>
        value is Undefined u ? throw Fail($"'{u.Name}' is undefined", offset) : value;

    private T CheckLength<T>(T value, int offset)
    {
        var length = value switch
        {
            string s => s.Length,
            List<object?> l => l.Count,
            OrderedDictionary<string, object?> d => d.Count,
            _ => 0,
        };
        return length > _limits.MaxCollectionLength && value is not string || value is string text && text.Length > _limits.MaxOutputLength
            ? throw new ExpressionLimitException($"a value at character {offset + 1} is over the size limit")
            : value;
    }

    private static string Describe(Expr expr) => expr switch
    {
        NameExpr n => n.Name,
        AttributeExpr a => $"{Describe(a.Target)}.{a.Name}",
        IndexExpr i when i.Index is LiteralExpr l => $"{Describe(i.Target)}[{Py.Repr(l.Value)}]",
        IndexExpr i => $"{Describe(i.Target)}[…]",
        CallExpr c => c.Target is null ? $"{c.Name}()" : $"{Describe(c.Target)}.{c.Name}()",
        _ => "value",
    };

    private static ExpressionEvaluationException Fail(string message, int offset, Exception? inner = null) =>
        new($"{message} (at character {offset + 1})", offset, inner);

    /// <summary><c>st2kv</c>, then <c>st2kv.system</c> or <c>st2kv.user</c>, before a key is named.</summary>
    private sealed record DatastoreNamespace(string? Scope);
}
