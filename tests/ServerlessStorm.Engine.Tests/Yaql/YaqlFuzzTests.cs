using System.Diagnostics;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Tests.Yaql;

/// <summary>
/// Property-based fuzzing of YAQL in <c>&lt;% %&gt;</c>: whatever the expression, the parser and evaluator answer with
/// their own error types (never another exception, never a crash of the process), finish, and stay within a memory bound.
/// </summary>
public class YaqlFuzzTests
{
    private const long MemoryBound = 256L * 1024 * 1024;

    private static readonly string[] Tokens =
    [
        "$", "$x", "$1", ".", "?.", "(", ")", "[", "]", "{", "}", ",", " => ", " -> ", "=", "!=", "<", ">=", " and ", " or ", "not ",
        " in ", " mod ", "+", "-", "*", "/", "=~", "'a'", "\"b\"", "`c`", "1", "2.5", "0", "true", "null", "x", "ctx()", "ctx(xs)",
        "select(", "where(", "len()", "orderBy(", "thenBy(", "groupBy(", "aggregate(", "join(", "split(", "format(", "range(",
        "let(", "dict(", "list(", "set(", "str(", "int(", "switch(", "coalesce(", "keys()", "flatten()", "toList()", "first()",
        "repeat(", "now()", "regex(", "zip(", "st2kv(", "'system.k'", "9999999", " ", "\\", "%>", "\n",
    ];

    private static readonly Gen<string> Expression =
        Gen.ListOf(Gen.Frequency((12, Gen.Elements(Tokens)), (1, Gen.Choose(0, 0x2FF).Select(c => ((char)c).ToString()))))
            .Select(parts => "<% " + string.Concat(parts) + " %>");

    [Property(MaxTest = 3000)]
    public Property YaqlParserAndEvaluator_AnswerEveryInputWithTheirOwnErrors() =>
        Prop.ForAll(Expression.ToArbitrary(), text =>
        {
            var scope = new TemplateScope
            {
                Workflow = new Functions(),
                KeyValues = new KeyValueSnapshot(new Dictionary<string, string> { ["system.k"] = "v" }),
                Limits = new ExpressionLimits(MaxOutputLength: 100_000, MaxCollectionLength: 10_000) { Timeout = TimeSpan.FromMilliseconds(200) },
            };
            var clock = Stopwatch.StartNew();
            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                var template = Template.Parse(text, TemplateDialect.Orquesta);
                template.Render(scope);
                template.Evaluate(scope);
            }
            catch (Exception ex) when (ex is TemplateSyntaxException or ExpressionEvaluationException or ExpressionLimitException)
            {
                // The expected answers to bad input.
            }

            return (clock.Elapsed < TimeSpan.FromSeconds(5) && GC.GetAllocatedBytesForCurrentThread() - before < MemoryBound)
                .Label($"{clock.Elapsed.TotalMilliseconds:0} ms, {(GC.GetAllocatedBytesForCurrentThread() - before) / 1024} KiB for {text}");
        });

    private sealed class Functions : IWorkflowFunctions
    {
        public object? Context(string? name) => name switch
        {
            null => Py.FromJson(JsonNode.Parse("""{"xs": [3, 1, 2], "x": {"a": [1, {"b": null}]}}""")),
            "xs" => Py.FromJson(JsonNode.Parse("[3, 1, 2]")),
            _ => throw new ExpressionEvaluationException($"ctx has no '{name}'", 0),
        };

        public object? Result() => Py.FromJson(JsonNode.Parse("""{"stdout": "a\nb"}"""));

        public object? Item(string? name) => "item";

        public bool Succeeded() => true;

        public bool Failed() => false;

        public bool Completed() => true;

        public string? TaskStatus(string taskName) => null;
    }
}
