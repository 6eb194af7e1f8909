using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Python;

/// <summary>Python settings (configuration section <c>Storm:Python</c>).</summary>
public sealed class PythonOptions
{
    public const string Section = "Storm:Python";

    /// <summary>The interpreter for packs without a virtualenv of their own (and to build virtualenvs); python3 on PATH when not set.</summary>
    public string? Interpreter { get; set; }

    /// <summary>The default <see cref="VirtualenvsPath"/>: beside the other state <c>storm serve</c> keeps in <c>.storm</c>.</summary>
    public static readonly string DefaultVirtualenvsPath = Path.Combine(".storm", "virtualenvs");

    /// <summary>Where packs' virtualenvs live, one per pack as <c>&lt;path&gt;/&lt;pack&gt;</c> (StackStorm: <c>/opt/stackstorm/virtualenvs</c>).</summary>
    public string VirtualenvsPath { get; set; } = DefaultVirtualenvsPath;

    /// <summary>pip's <c>--index-url</c>: a private package index instead of the public one (pip hides a password in it from its output).</summary>
    public string? IndexUrl { get; set; }

    /// <summary>pip's <c>--find-links</c>: folders of wheels (or pages of links) to install from.</summary>
    public IList<string> FindLinks { get; } = [];

    /// <summary>pip's <c>--no-index</c>: install only from <see cref="FindLinks"/>, for machines without a package index.</summary>
    public bool NoIndex { get; set; }

    /// <summary>Further arguments for <c>pip install</c> (e.g. <c>--trusted-host</c>, <c>--extra-index-url</c>), after the ones above.</summary>
    public IList<string> PipArguments { get; } = [];

    /// <summary>Build a missing or stale virtualenv when the packs load (<c>storm serve</c> sets it); otherwise only report it.</summary>
    public bool BuildVirtualenvsAtStart { get; set; }

    /// <summary>How long building one pack's virtualenv (venv and pip together) may take, in seconds.</summary>
    public int VirtualenvTimeout { get; set; } = 600;
}

/// <summary>A pack's Python cannot be used (its virtualenv is missing or stale, or there is no interpreter); the message says what to do.</summary>
public sealed class PythonEnvironmentException(string message) : Exception(message);

/// <summary>Which Python interpreter runs a pack's code: its own virtualenv when it has requirements, else the host's.</summary>
public interface IPythonEnvironments
{
    /// <summary>The interpreter's path for <paramref name="pack"/>; throws <see cref="PythonEnvironmentException"/> when there is none to use.</summary>
    string InterpreterFor(PackDefinition pack);
}
