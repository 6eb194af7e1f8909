using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Expressions.Yaql;

namespace ServerlessStorm.Engine.Tests.Yaql;

/// <summary>
/// Replays yaql_vectors.json — expressions evaluated by YAQL's reference implementation set up as Orquesta sets it
/// up (see generate_vectors.py) — through our parser and evaluator: the same value, or the same kind of error.
/// </summary>
public sealed class YaqlVectorTests
{
    private static readonly Lazy<JsonObject> Vectors = new(() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Yaql", "yaql_vectors.json")))!.AsObject());

    public static TheoryData<int, string> Cases()
    {
        var data = new TheoryData<int, string>();
        var vectors = Vectors.Value["vectors"]!.AsArray();
        for (var i = 0; i < vectors.Count; i++)
        {
            data.Add(i, vectors[i]!["expression"]!.GetValue<string>());
        }

        return data;
    }

    public static TheoryData<string> Differences() => [.. Vectors.Value["differences"]!.AsArray().Select(d => d!["expression"]!.GetValue<string>())];

    [Theory]
    [MemberData(nameof(Differences))]
    public void KnownDifferences_StillDiffer_AndAreListedInTheDocs(string expression)
    {
        var vector = Vectors.Value["differences"]!.AsArray().Single(d => d!["expression"]!.GetValue<string>() == expression)!;
        var (actual, error) = Evaluate(expression);
        var same = vector["error"] is { } expectedError ? error == expectedError.GetValue<string>() : error is null && Same(vector["result"], actual);

        // A difference that went away belongs with the vectors; one that stays is documented.
        Assert.False(same, $"<% {expression} %> now matches the reference: move it to the vectors and out of docs/yaql.md");
    }

    [Fact]
    public void EveryFunctionAndMethod_HasAVector()
    {
        var expressions = string.Join("\n", Vectors.Value["vectors"]!.AsArray().Select(v => v!["expression"]!.GetValue<string>()));
        // task() needs the interpreter's task records (WorkflowInterpreterTests); StackStorm's data, time and version
        // functions are the Jinja filters' code (YaqlTemplateTests, StackStormFilterTests).
        var elsewhere = new HashSet<string>(StringComparer.Ordinal)
        {
            "task", "basename", "dirname", "from_json_string", "json_parse", "from_yaml_string", "yaml_parse", "to_json_string",
            "json_dump", "to_yaml_string", "yaml_dump", "json_escape", "regex_match", "regex_replace", "regex_search",
            "regex_substring", "use_none", "jsonpath_query", "to_human_time_from_seconds", "version_compare", "version_more_than",
            "version_less_than", "version_equal", "version_match", "version_bump_major", "version_bump_minor", "version_bump_patch",
            "version_strip_patch",
        };

        var missing = YaqlFunctions.FunctionNames.Concat(YaqlFunctions.MethodNames).Distinct()
            .Where(name => !elsewhere.Contains(name) && !System.Text.RegularExpressions.Regex.IsMatch(expressions, $@"\b{name}\("))
            .ToList();

        Assert.True(missing.Count == 0, $"no vector calls: {string.Join(", ", missing)}");
    }

    [Fact]
    public void Vectors_AreEnoughToCoverTheLanguage() => Assert.True(Vectors.Value["vectors"]!.AsArray().Count >= 500);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Yaql_MatchesTheReferenceImplementation(int index, string expression)
    {
        var vector = Vectors.Value["vectors"]![index]!.AsObject();
        var (actual, error) = Evaluate(expression);
        if (vector["error"] is { } expectedError)
        {
            Assert.True(error == expectedError.GetValue<string>(),
                $"<% {expression} %>: expected a {expectedError} error, got {(error is null ? "the value " + Py.Repr(actual) : "a " + error + " error")}");
            return;
        }

        Assert.True(error is null, $"<% {expression} %>: expected {vector["result"]?.ToJsonString() ?? "null"}, got a {error} error: {actual}");
        Assert.True(Same(vector["result"], actual), $"<% {expression} %>: expected {vector["result"]?.ToJsonString() ?? "null"}, got {Py.Repr(actual)}");
    }

    private static (object? Value, string? Error) Evaluate(string expression)
    {
        var data = Vectors.Value["data"]!;
        var scope = new TemplateScope
        {
            Workflow = new VectorWorkflow(data),
            KeyValues = new KeyValueSnapshot(data["datastore"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>())),
        };
        try
        {
            return (Template.Parse("<%" + expression + "%>", TemplateDialect.Orquesta).EvaluateValue(scope), null);
        }
        catch (TemplateSyntaxException ex)
        {
            return (ex.Message, "syntax");
        }
        catch (ExpressionEvaluationException ex)
        {
            return (ex.Message, ex.InnerException is YaqlException { Kind: YaqlErrorKind.NoFunction } ? "no_function" : "runtime");
        }
    }

    private static bool Same(JsonNode? expected, object? actual)
    {
        switch (expected)
        {
            case null:
                return actual is null;
            case JsonObject marker when marker["$type"] is { } type:
                return type.GetValue<string>() switch
                {
                    // now() leaves the expression as the text Python prints for a datetime.
                    "datetime" => actual is string s && System.Text.RegularExpressions.Regex.IsMatch(s, @"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?[+-]\d\d:\d\d$"),
                    "regex" => actual is string,
                    "set" => actual is List<object?> items && marker["items"]!.AsArray().Count == items.Count
                        && marker["items"]!.AsArray().All(e => items.Any(a => Same(e, a))),
                    _ => false,
                };
            case JsonObject obj:
                return actual is OrderedDictionary<string, object?> dict && dict.Count == obj.Count
                    && obj.All(p => dict.TryGetValue(p.Key, out var v) && Same(p.Value, v));
            case JsonArray array:
                return actual is List<object?> list && list.Count == array.Count && array.Select((e, i) => Same(e, list[i])).All(x => x);
            case JsonValue value:
                switch (value.GetValueKind())
                {
                    case JsonValueKind.String:
                        return actual is string s && s == value.GetValue<string>();
                    case JsonValueKind.True or JsonValueKind.False:
                        return actual is bool b && b == value.GetValue<bool>();
                    case JsonValueKind.Number:
                        var text = value.ToJsonString();
                        if (text.Contains('.') || text.Contains('e') || text.Contains('E'))
                        {
                            var d = value.GetValue<double>();
                            return actual is double a && (a == d || Math.Abs(a - d) <= 1e-12 * Math.Max(1, Math.Abs(d)));
                        }

                        return actual is long l && l == value.GetValue<long>();
                }

                return false;
            default:
                return false;
        }
    }

    private sealed class VectorWorkflow(JsonNode data) : IWorkflowFunctions
    {
        public object? Context(string? name)
        {
            var vars = data["vars"]!.AsObject();
            return name is null ? Py.FromJson(vars)
                : vars.TryGetPropertyValue(name, out var value) ? Py.FromJson(value)
                : throw new ExpressionEvaluationException($"ctx has no '{name}'", 0);
        }

        public object? Result() => Py.FromJson(data["result"]);

        public object? Item(string? name)
        {
            var item = data["item"]!.AsObject();
            return name is null ? Py.FromJson(item)
                : item.TryGetPropertyValue(name, out var value) ? Py.FromJson(value)
                : throw new ExpressionEvaluationException($"item has no '{name}'", 0);
        }

        public bool Succeeded() => true;

        public bool Failed() => false;

        public bool Completed() => true;

        public string? TaskStatus(string taskName) => data["task_statuses"]![taskName]?.GetValue<string>();
    }
}
