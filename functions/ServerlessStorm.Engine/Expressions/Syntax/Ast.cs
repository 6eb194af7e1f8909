namespace ServerlessStorm.Engine.Expressions.Syntax;

/// <summary>An expression node; <see cref="Offset"/> is where it starts in the template source.</summary>
public abstract record Expr(int Offset);

public sealed record LiteralExpr(object? Value, int Offset) : Expr(Offset);

public sealed record NameExpr(string Name, int Offset) : Expr(Offset);

public sealed record ListExpr(IReadOnlyList<Expr> Items, int Offset) : Expr(Offset);

public sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Items, int Offset) : Expr(Offset);

public sealed record AttributeExpr(Expr Target, string Name, int Offset) : Expr(Offset);

public sealed record IndexExpr(Expr Target, Expr Index, int Offset) : Expr(Offset);

public sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Offset) : Expr(Offset);

public sealed record UnaryExpr(string Op, Expr Operand, int Offset) : Expr(Offset);

public sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Offset) : Expr(Offset);

/// <summary><c>a if condition else b</c>; a missing else is undefined, as in Jinja.</summary>
public sealed record ConditionalExpr(Expr Then, Expr Condition, Expr? Else, int Offset) : Expr(Offset);

public sealed record FilterExpr(Expr Target, string Name, IReadOnlyList<Expr> Args, IReadOnlyDictionary<string, Expr> Kwargs, int Offset) : Expr(Offset);

public sealed record TestExpr(Expr Target, string Name, bool Negated, IReadOnlyList<Expr> Args, int Offset) : Expr(Offset);

/// <summary>A call of a global function (<c>range</c>, the workflow functions) or of a safe method on a value.</summary>
public sealed record CallExpr(Expr? Target, string Name, IReadOnlyList<Expr> Args, int Offset) : Expr(Offset)
{
    /// <summary>Keyword arguments, kept for the functions that take them (Orquesta's <c>st2kv(key, decrypt=…, default=…)</c>).</summary>
    public IReadOnlyDictionary<string, Expr> Kwargs { get; init; } = new Dictionary<string, Expr>();
}

/// <summary>A node of a template body.</summary>
public abstract record Node;

public sealed record TextNode(string Text) : Node;

public sealed record OutputNode(Expr Expression) : Node;

public sealed record IfNode(IReadOnlyList<(Expr Condition, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node>? Else) : Node;

public sealed record ForNode(IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else, int Offset) : Node;

public sealed record SetNode(string Name, Expr Value) : Node;

/// <summary>Orquesta's <c>&lt;% … %&gt;</c>: a YAQL expression, <see cref="Text"/> being the source between the delimiters.</summary>
public sealed record YaqlExpr(string Text, int Offset) : Expr(Offset)
{
    internal Yaql.YaqlNode Root { get; init; } = null!;
}
