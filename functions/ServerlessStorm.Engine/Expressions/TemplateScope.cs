using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Expressions;

/// <summary>
/// What a template can read: named variables (<c>trigger</c>, <c>item</c>, action parameters, …), the datastore
/// (<c>st2kv</c>) and, in workflows, Orquesta's functions. JSON values are converted to the expression model on
/// first use, once per scope.
/// </summary>
public sealed class TemplateScope
{
    private readonly Dictionary<string, JsonNode?> _json = new(StringComparer.Ordinal);
    private readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);

    private static readonly AsyncLocal<IKeyValueLookup?> AmbientKeyValues = new();
    private IKeyValueLookup? _keyValues;

    /// <summary>The datastore; a scope given none reads the one set for the current flow by <see cref="UseKeyValues"/>.</summary>
    public IKeyValueLookup? KeyValues
    {
        get => _keyValues ?? AmbientKeyValues.Value;
        set => _keyValues = value;
    }

    /// <summary>
    /// Sets the datastore that scopes made without one read in the current async flow until disposed: the workflow
    /// orchestrator hands its datastore snapshot this way to the interpreter, which makes its scopes itself.
    /// </summary>
    public static IDisposable UseKeyValues(IKeyValueLookup keyValues)
    {
        var previous = AmbientKeyValues.Value;
        AmbientKeyValues.Value = keyValues;
        return new Restore(previous);
    }

    private sealed class Restore(IKeyValueLookup? previous) : IDisposable
    {
        public void Dispose() => AmbientKeyValues.Value = previous;
    }

    public IWorkflowFunctions? Workflow { get; set; }

    public ExpressionLimits Limits { get; set; } = ExpressionLimits.Default;

    /// <summary>
    /// What YAQL's <c>now()</c> reads. An orchestrator sets its replay-safe clock here (the orchestration's current
    /// time), so a replay decides as the first run did; unset, it is the system clock.
    /// </summary>
    public Func<DateTimeOffset>? Clock { get; set; }

    public static TemplateScope ForTrigger(JsonNode? payload) => new TemplateScope().Set("trigger", payload);

    public TemplateScope Set(string name, JsonNode? value)
    {
        _json[name] = value;
        _values.Remove(name);
        return this;
    }

    /// <summary>Sets a variable to a value already in the expression model.</summary>
    public TemplateScope SetValue(string name, object? value)
    {
        _values[name] = value;
        _json.Remove(name);
        return this;
    }

    public bool TryGet(string name, out object? value)
    {
        if (_values.TryGetValue(name, out value))
        {
            return true;
        }

        if (_json.TryGetValue(name, out var json))
        {
            value = Py.FromJson(json);
            _values[name] = value;
            _json.Remove(name);
            return true;
        }

        return false;
    }
}
