using ServerlessStorm.Engine.Actions;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// Property-based fuzzing of the two parsers that read untrusted text: templates and rule files. Whatever the input,
/// they answer with their own error types (never another exception), finish, and stay within a memory bound.
/// </summary>
public class FuzzTests
{
    private const long MemoryBound = 256L * 1024 * 1024;

    private static readonly string[] TemplateTokens =
    [
        "{{", "}}", "{%", "%}", "{#", "#}", "<%", "%>", "-", " ", " ", "if ", "elif ", "else", "endif", "for ", " in ", "endfor", "set ", "=",
        "trigger", ".body", ".x", "[0]", "['k']", "[", "]", "(", ")", "{", "}", ",", ":", "'", "\"", "a", "1", "2.5", "-3", "**", "*", "/", "//",
        "%", "+", "~", "==", "!=", "<", ">=", " and ", " or ", "not ", " is defined", "|", "default('x')", "upper", "to_json_string", "length",
        "join(',')", "range(", "9999999", ")", "loop.index", "none", "true", "x", "$", "ctx(", "\\", "\n",
    ];

    private static readonly Gen<string> TemplateText =
        Gen.ListOf(Gen.Frequency((12, Gen.Elements(TemplateTokens)), (1, Gen.Choose(0, 0x2FF).Select(c => ((char)c).ToString()))))
            .Select(parts => string.Concat(parts));

    [Property(MaxTest = 2000)]
    public Property TemplateParserAndEvaluator_AnswerEveryInputWithTheirOwnErrors() =>
        Prop.ForAll(TemplateText.ToArbitrary(), text =>
        {
            var scope = TemplateScope.ForTrigger(JsonNode.Parse("""{"body": {"x": [1, 2, 3], "k": "v"}, "x": "y"}"""));
            scope.Limits = new ExpressionLimits(MaxOutputLength: 100_000, MaxLoopIterations: 10_000, MaxCollectionLength: 10_000) { Timeout = TimeSpan.FromMilliseconds(200) };
            var clock = Stopwatch.StartNew();
            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                foreach (var dialect in new[] { TemplateDialect.Jinja, TemplateDialect.Orquesta })
                {
                    var template = Template.Parse(text, dialect);
                    template.Render(scope);
                    template.Evaluate(scope);
                }
            }
            catch (Exception ex) when (ex is TemplateSyntaxException or ExpressionEvaluationException or ExpressionLimitException)
            {
                // The expected answers to bad input.
            }

            return (clock.Elapsed < TimeSpan.FromSeconds(5) && GC.GetAllocatedBytesForCurrentThread() - before < MemoryBound)
                .Label($"{clock.Elapsed.TotalMilliseconds:0} ms, {(GC.GetAllocatedBytesForCurrentThread() - before) / 1024} KiB for {text}");
        });

    private static readonly string[] FormatTokens = ["%", "s", "d", "f", "e", "g", "x", "o", "c", "r", "(", ")", "a", "*", ".", "-", "0", "+", " ", "#", "5", "99", "l", "%%"];

    private static readonly object?[] FormatArguments =
        [null, true, 0L, -1L, long.MinValue, long.MaxValue, 0.5, -0.0, double.NaN, double.PositiveInfinity, 1e300, 5e-324, "", "x", 0xD800L, 0x110000L];

    private static readonly string[] JsonPathTokens = ["$", "@", ".", "..", "*", "[", "]", "0", "-1", ":", "a", "'b'", ",", "|", "(", ")"];

    /// <summary>Python's % formatting and JSONPath queries (which may come from a payload) answer with their own errors.</summary>
    [Property(MaxTest = 3000)]
    public Property PercentFormattingAndJsonPath_AnswerEveryInputWithTheirOwnErrors() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var random = new Random(seed);
            var format = string.Concat(Enumerable.Range(0, random.Next(12)).Select(_ => FormatTokens[random.Next(FormatTokens.Length)]));
            var items = Enumerable.Range(0, random.Next(4)).Select(_ => FormatArguments[random.Next(FormatArguments.Length)]).ToList();
            var mapping = new OrderedDictionary<string, object?>(StringComparer.Ordinal) { ["a"] = items.FirstOrDefault() };
            object? args = random.Next(3) switch { 0 => items, 1 => mapping, _ => items.FirstOrDefault() };
            try
            {
                PyFormat.Format(format, args, args is List<object?>, 100_000);
            }
            catch (Exception ex) when (ex is PyTypeError or ExpressionLimitException)
            {
                // The expected answers to bad input.
            }

            var query = string.Concat(Enumerable.Range(0, random.Next(10)).Select(_ => JsonPathTokens[random.Next(JsonPathTokens.Length)]));
            try
            {
                JsonPathQuery.Find(Py.FromJson(JsonNode.Parse("{\"a\": [{\"b\": 1}, {\"a\": {\"b\": [2, 3]}}], \"b\": \"xyz\"}")), query, 10_000);
            }
            catch (JsonPathSyntaxException)
            {
                // The expected answer to a bad query.
            }

            return true;
        });

    /// <summary>Grammar-built templates (most of them valid), some then corrupted, so evaluation is exercised deeply.</summary>
    [Property(MaxTest = 3000)]
    public Property GeneratedTemplates_EvaluateOrFailWithTheirOwnErrors() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var random = new Random(seed);
            var text = TemplateFrom(random, 3);
            if (random.Next(4) == 0)
            {
                var at = random.Next(text.Length + 1);
                text = random.Next(2) == 0 && at < text.Length ? text.Remove(at, 1) : text.Insert(at, Corruptions[random.Next(Corruptions.Length)].ToString());
            }

            var scope = TemplateScope.ForTrigger(JsonNode.Parse("""{"body": {"x": [1, 2.5, "a", null], "k": "v", "n": 3, "d": {"a": true}}, "x": "y"}"""));
            scope.Limits = new ExpressionLimits(MaxOutputLength: 100_000, MaxLoopIterations: 10_000, MaxCollectionLength: 10_000) { Timeout = TimeSpan.FromMilliseconds(200) };
            try
            {
                var template = Template.Parse(text);
                template.Render(scope);
                template.Evaluate(scope);
            }
            catch (Exception ex) when (ex is TemplateSyntaxException or ExpressionEvaluationException or ExpressionLimitException)
            {
                // The expected answers to bad input.
            }

            return true.Label(text);
        });

    private const string Corruptions = "{}%|()[]'\"-~.";

    private static readonly string[] Paths = ["trigger.body.x", "trigger.body.k", "trigger.body.n", "trigger.body.d", "trigger.x", "trigger.body.missing", "v", "loop.index"];
    private static readonly string[] Operators = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "and", "or", "in", "not in"];
    private static readonly string[] Filters =
    [
        "default('d')", "upper", "lower", "length", "first", "last", "join('-')", "to_json_string", "to_yaml_string", "to_complex", "json_escape", "int",
        "float", "string", "sort", "unique", "reverse", "list", "sum", "min", "max", "abs", "round", "trim", "capitalize", "title", "regex_replace('a', 'b')",
        "regex_search('\\d')", "regex_match('a')", "regex_substring('\\w')", "replace('a', 'b')", "from_json_string", "from_yaml_string", "basename",
        "items", "dictsort", "bool", "use_none",
    ];
    private static readonly string[] Tests = ["defined", "undefined", "none", "string", "number", "mapping", "sequence", "even", "odd", "divisibleby 2", "in [1, 2]"];

    private static string ExpressionFrom(Random r, int depth) => (depth <= 0 ? r.Next(3) : r.Next(14)) switch
    {
        0 => new[] { "1", "-2", "2.5", "'a'", "\"b\"", "none", "true", "[]", "{}" }[r.Next(9)],
        1 or 2 => Paths[r.Next(Paths.Length)],
        3 => $"({ExpressionFrom(r, depth - 1)} {Operators[r.Next(Operators.Length)]} {ExpressionFrom(r, depth - 1)})",
        4 or 5 => $"{ExpressionFrom(r, depth - 1)} | {Filters[r.Next(Filters.Length)]}",
        6 => $"({ExpressionFrom(r, depth - 1)} is {(r.Next(2) == 0 ? "not " : "")}{Tests[r.Next(Tests.Length)]})",
        7 => $"[{ExpressionFrom(r, depth - 1)}, {ExpressionFrom(r, depth - 1)}]",
        8 => $"{{'k': {ExpressionFrom(r, depth - 1)}}}",
        9 => $"({ExpressionFrom(r, depth - 1)} if {ExpressionFrom(r, depth - 1)} else {ExpressionFrom(r, depth - 1)})",
        10 => $"{ExpressionFrom(r, depth - 1)}[{ExpressionFrom(r, depth - 1)}]",
        11 => $"{ExpressionFrom(r, depth - 1)}[{r.Next(-2, 3)}:{r.Next(-2, 3)}]",
        12 => $"range({r.Next(-3, 20)})",
        _ => $"(not {ExpressionFrom(r, depth - 1)})",
    };

    private static string TemplateFrom(Random r, int depth)
    {
        var parts = new StringBuilder();
        for (var i = r.Next(1, 4); i > 0; i--)
        {
            parts.Append((depth <= 0 ? r.Next(2) : r.Next(6)) switch
            {
                0 => "text ",
                1 => $"{{{{ {ExpressionFrom(r, 3)} }}}}",
                2 => $"{{% if {ExpressionFrom(r, 2)} %}}{TemplateFrom(r, depth - 1)}{{% else %}}{TemplateFrom(r, depth - 1)}{{% endif %}}",
                3 => $"{{% for v in {ExpressionFrom(r, 2)} %}}{TemplateFrom(r, depth - 1)}{{% endfor %}}",
                4 => $"{{% set v = {ExpressionFrom(r, 2)} %}}",
                _ => "\n",
            });
        }

        return parts.ToString();
    }

    private static readonly string[] YamlTokens =
    [
        "name: r\n", "pack: p\n", "trigger:\n", "  type: core.st2.webhook\n", "  parameters: {url: x}\n", "criteria:\n",
        "  trigger.body.x:\n", "    type: equals\n", "    type: regex\n", "    type: search\n", "    condition: any\n", "    pattern: 1\n",
        "    pattern: '(a+)+$'\n", "    pattern: \"{{ trigger.x }}\"\n", "    pattern:\n", "      item.a: {type: exists}\n", "action:\n",
        "  ref: core.noop\n", "  parameters:\n", "    message: \"{{ trigger.body\"\n", "&a [1, 2]", "*a", "*b", "- ", "? ", ": ", "{", "}", "[", "]",
        "'", "\"", "#", "!!str ", "!!python/object ", "%YAML 1.1\n", "---\n", "...\n", "\t", "  ", "\n", "x", "yes", "~", "|\n", ">\n",
    ];

    private static readonly Gen<string> YamlText =
        Gen.ListOf(Gen.Frequency((12, Gen.Elements(YamlTokens)), (1, Gen.Choose(0, 0x2FF).Select(c => ((char)c).ToString()))))
            .Select(parts => string.Concat(parts));

    [Property(MaxTest = 1000)]
    public Property RuleLoader_ReportsProblemsForEveryInput_NeverThrows() =>
        Prop.ForAll(YamlText.ToArbitrary(), text =>
        {
            var path = Path.Combine(Path.GetTempPath(), $"storm-fuzz-{Guid.NewGuid():N}.yaml");
            File.WriteAllText(path, text);
            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                var (rule, problems) = new PackLoader(["noop", "echo"]).LoadRule(path);
                return ((rule is not null || problems.Count > 0) && GC.GetAllocatedBytesForCurrentThread() - before < MemoryBound)
                    .Label($"rule {rule?.Ref}, {problems.Count} problems for {text}");
            }
            finally
            {
                File.Delete(path);
            }
        });

    [Fact]
    public void RuleLoader_MutationsOfARealRule_NeverThrow()
    {
        var original = File.ReadAllText(Path.Combine(Testing.RepositoryPaths.Packs, "examples", "rules", "notify.yaml"));
        var random = new Random(20261124);
        var path = Path.Combine(Path.GetTempPath(), $"storm-mutant-{Guid.NewGuid():N}.yaml");
        try
        {
            for (var i = 0; i < 2000; i++)
            {
                var text = new StringBuilder(original);
                for (var edits = random.Next(1, 6); edits > 0 && text.Length > 0; edits--)
                {
                    var at = random.Next(text.Length);
                    switch (random.Next(3))
                    {
                        case 0:
                            text.Remove(at, 1);
                            break;
                        case 1:
                            text.Insert(at, "{}[]:'\"&*!|>-#\n \t"[random.Next(17)]);
                            break;
                        default:
                            text[at] = (char)random.Next(32, 127);
                            break;
                    }
                }

                File.WriteAllText(path, text.ToString());
                var (rule, problems) = new PackLoader(RunnerRegistry.Default).LoadRule(path);
                Assert.True(rule is not null || problems.Count > 0);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void YamlReader_AliasBombsAndDeepNesting_AreRefusedQuickly()
    {
        var bomb = new StringBuilder("a: &a [x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 30; i++)
        {
            var previous = i == 1 ? "a" : $"a{i - 1}";
            bomb.Append($"a{i}: &a{i} [*{previous}, *{previous}, *{previous}]\n");
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read(bomb.ToString()));
        Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read(new string('[', 100_000)));
        Assert.Throws<YamlReadException>(() => BoundedYamlReader.Read(string.Concat(Enumerable.Repeat("- ", 5_000))));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < MemoryBound);
    }
}
