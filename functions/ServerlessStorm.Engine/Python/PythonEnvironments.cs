using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Python;

/// <summary>Python settings (configuration section <c>Storm:Python</c>).</summary>
public sealed class PythonOptions
{
    public const string Section = "Storm:Python";

    /// <summary>The interpreter for packs without a virtualenv of their own (and to build virtualenvs); python3 on PATH when not set.</summary>
    public string? Interpreter { get; set; }
}

/// <summary>A pack's Python cannot be used (its virtualenv is missing or stale, or there is no interpreter); the message says what to do.</summary>
public sealed class PythonEnvironmentException(string message) : Exception(message);

/// <summary>Which Python interpreter runs a pack's code: its own virtualenv when it has requirements, else the host's.</summary>
public interface IPythonEnvironments
{
    /// <summary>The interpreter's path for <paramref name="pack"/>; throws <see cref="PythonEnvironmentException"/> when there is none to use.</summary>
    string InterpreterFor(PackDefinition pack);
}
