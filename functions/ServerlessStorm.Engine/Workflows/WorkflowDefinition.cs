using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Workflows;

/// <summary>An Orquesta workflow (version 1.0) as loaded from its YAML file, with every expression parsed.</summary>
public sealed record WorkflowDefinition(
    string SourceFile,
    IReadOnlyList<WorkflowInput> Input,
    IReadOnlyList<NamedExpression> Vars,
    IReadOnlyList<NamedExpression> Output,
    IReadOnlyDictionary<string, WorkflowTask> Tasks,
    IReadOnlyList<string> TaskOrder)
{
    /// <summary>The runner type of a workflow action (its entry_point is the workflow file).</summary>
    public const string RunnerType = "orquesta";

    /// <summary>The engine commands a transition's <c>do</c> may name instead of a task.</summary>
    public static readonly IReadOnlySet<string> EngineCommands = new HashSet<string>(StringComparer.Ordinal) { "continue", "fail", "noop", "retry" };

    /// <summary>The tasks no transition leads to: where the workflow starts, in file order.</summary>
    public IReadOnlyList<string> StartTasks => [.. TaskOrder.Where(t => !Tasks.Values.Any(o => o.Next.Any(n => n.Do.Contains(t))))];

    /// <summary>The tasks with a transition to <paramref name="task"/>.</summary>
    public IReadOnlyList<string> InboundOf(string task) => [.. TaskOrder.Where(t => Tasks[t].Next.Any(n => n.Do.Contains(task)))];
}

/// <summary>An input parameter; one without a default is required.</summary>
public sealed record WorkflowInput(string Name, JsonNode? Default, bool HasDefault)
{
    /// <summary>The default with its expressions parsed: as in Orquesta, it may use the inputs before it.</summary>
    public TemplatedValue? DefaultValue { get; init; }
}

/// <summary>A name and the value (possibly templated) it gets, as in <c>vars</c>, <c>publish</c> and <c>output</c>.</summary>
public sealed record NamedExpression(string Name, TemplatedValue Value);

/// <summary>One task: an action with its input, what happens next, and how it runs (join, items, retry, delay).</summary>
public sealed record WorkflowTask(
    string Name,
    string? Action,
    TemplatedValue Input,
    IReadOnlyList<WorkflowTransition> Next,
    WorkflowJoin? Join,
    WithItems? With,
    RetrySpec? Retry,
    TemplatedValue? Delay,
    SourcePosition Position);

/// <summary><c>join: all</c> (<see cref="Count"/> null) or <c>join: N</c>.</summary>
public sealed record WorkflowJoin(int? Count);

/// <summary>A <c>next</c> entry: when it applies, what it publishes, which tasks or engine commands follow.</summary>
public sealed record WorkflowTransition(Template? When, IReadOnlyList<NamedExpression> Publish, IReadOnlyList<string> Do, SourcePosition Position);

/// <summary><c>with: {items, concurrency}</c>; <see cref="Variables"/> are the names of the <c>x, y in …</c> form.</summary>
public sealed record WithItems(IReadOnlyList<string> Variables, Template Items, TemplatedValue? Concurrency);

/// <summary><c>retry: {when, count, delay}</c>.</summary>
public sealed record RetrySpec(Template? When, TemplatedValue Count, TemplatedValue? Delay);
