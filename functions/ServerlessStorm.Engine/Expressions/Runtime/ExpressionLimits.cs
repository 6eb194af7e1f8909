namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>A template went past one of its <see cref="ExpressionLimits"/>.</summary>
public sealed class ExpressionLimitException(string message) : Exception(message);

/// <summary>An expression failed while it was evaluated (a type error, an undefined value used, a bad filter argument).</summary>
public sealed class ExpressionEvaluationException(string message, int offset, Exception? inner = null) : Exception(message, inner)
{
    public int Offset { get; } = offset;
}

/// <summary>The sandbox's bounds: what one render may produce and spend.</summary>
public sealed record ExpressionLimits(
    int MaxOutputLength = 1024 * 1024,
    int MaxLoopIterations = 100_000,
    int MaxDepth = 64,
    int MaxCollectionLength = 100_000)
{
    public static readonly ExpressionLimits Default = new();

    /// <summary>Wall-clock budget of one render.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);
}
