namespace ServerlessStorm.Engine.Expressions.Runtime;

/// <summary>
/// The key-value datastore as templates see it (<c>st2kv.system.NAME</c>, <c>st2kv.user.NAME</c>). Lookups are
/// synchronous because rendering is: a host fetches the keys a template names (<see cref="Template.DatastoreKeys"/>)
/// before rendering and answers from that.
/// </summary>
public interface IKeyValueLookup
{
    /// <summary>The value under <paramref name="name"/> in <paramref name="scope"/> (system or user), or null.</summary>
    string? Get(string scope, string name);
}

/// <summary>A fixed set of key-value pairs, keyed "scope.name".</summary>
public sealed class KeyValueSnapshot(IReadOnlyDictionary<string, string> values) : IKeyValueLookup
{
    public string? Get(string scope, string name) => values.GetValueOrDefault($"{scope}.{name}");
}

/// <summary>
/// Orquesta's workflow functions, filled in by the workflow interpreter: ctx(), ctx(name), result(), item(),
/// item(name), succeeded(), failed(), completed(), task_status(name). Values are in the <see cref="Py"/> model.
/// </summary>
public interface IWorkflowFunctions
{
    object? Context(string? name);

    object? Result();

    object? Item(string? name);

    bool Succeeded();

    bool Failed();

    bool Completed();

    string? TaskStatus(string taskName);

    /// <summary>StackStorm's task(name): a finished task's record; hosts that keep none say so.</summary>
    object? Task(string? taskName) =>
        throw new ExpressionEvaluationException($"task({taskName}) is not available: this host keeps no task records for expressions", 0);
}
