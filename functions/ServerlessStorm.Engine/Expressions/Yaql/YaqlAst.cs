namespace ServerlessStorm.Engine.Expressions.Yaql;

/// <summary>A YAQL expression node; <see cref="Offset"/> is where it starts in the template source.</summary>
internal abstract record YaqlNode(int Offset);

/// <summary>A quoted string, a number, <c>true</c>, <c>false</c> or <c>null</c>.</summary>
internal sealed record YaqlConstant(object? Value, int Offset) : YaqlNode(Offset);

/// <summary>A bare name (<c>ctx(name)</c>, <c>$.name</c>): a string where a value is wanted, a key after a dot.</summary>
internal sealed record YaqlKeyword(string Name, int Offset) : YaqlNode(Offset);

/// <summary><c>$</c> (Name is empty), <c>$name</c> or <c>$1</c>.</summary>
internal sealed record YaqlVariable(string Name, int Offset) : YaqlNode(Offset);

/// <summary><c>[a, b]</c>.</summary>
internal sealed record YaqlList(IReadOnlyList<YaqlNode> Items, int Offset) : YaqlNode(Offset);

/// <summary><c>{k =&gt; v, …}</c>; every item is a <see cref="YaqlMapping"/>.</summary>
internal sealed record YaqlMap(IReadOnlyList<YaqlNode> Items, int Offset) : YaqlNode(Offset);

/// <summary><c>key =&gt; value</c> inside an argument list or a map.</summary>
internal sealed record YaqlMapping(YaqlNode Key, YaqlNode Value, int Offset) : YaqlNode(Offset);

/// <summary><c>target[args]</c>.</summary>
internal sealed record YaqlIndex(YaqlNode Target, IReadOnlyList<YaqlNode> Args, int Offset) : YaqlNode(Offset);

/// <summary><c>name(args)</c>; as the right side of <c>.</c> it is a method call on the left side.</summary>
internal sealed record YaqlCall(string Name, IReadOnlyList<YaqlNode> Args, int Offset) : YaqlNode(Offset);

/// <summary>A binary operator: <c>.</c>, <c>?.</c>, comparisons, arithmetic, <c>and</c>, <c>or</c>, <c>in</c>, <c>=~</c>, <c>-&gt;</c>.</summary>
internal sealed record YaqlBinary(string Op, YaqlNode Left, YaqlNode Right, int Offset) : YaqlNode(Offset);

/// <summary>A prefix operator: <c>-</c>, <c>+</c> or <c>not</c>.</summary>
internal sealed record YaqlUnary(string Op, YaqlNode Operand, int Offset) : YaqlNode(Offset);
