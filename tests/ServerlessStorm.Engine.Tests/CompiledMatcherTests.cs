using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Tests;

/// <summary>The compiled matcher must give the reference evaluator's answer on every rule set and payload.</summary>
public class CompiledMatcherTests
{
    private static readonly RuleMatcher Matcher = new(NullLogger<RuleMatcher>.Instance);

    // A small vocabulary makes collisions (and so matches) frequent; it holds Python's equality corner cases.
    private static readonly object?[] Scalars = [null, true, false, 0L, 1L, 1.0, 2L, 2.5, "", "a", "ab", "abc", "A", "AB", "b", "1", "ä"];
    private static readonly string[] Paths = ["trigger.a", "trigger.b", "trigger.c.d", "trigger.list[0]", "trigger.missing", "trigger"];
    private static readonly string[] Operators =
    [
        "equals", "equals", "iequals", "startswith", "istartswith", "exists", "nexists", "inside", "inside", "contains",
        "nequals", "endswith", "regex", "lessthan", "greaterthan", "ncontains", "ninside", "matchwildcard",
    ];

    private static Gen<object?> Value(int depth) => depth <= 0
        ? Gen.Elements(Scalars)
        : Gen.Frequency(
            (6, Gen.Elements(Scalars)),
            (1, Gen.ListOf(Gen.Elements(Scalars), 3).Select(l => (object?)l.ToList())),
            (1, Value(depth - 1).Select(v => (object?)new OrderedDictionary<string, object?> { ["d"] = v })));

    private static readonly Gen<Criterion> CriterionGen =
        from path in Gen.Elements(Paths)
        from op in Gen.Elements(Operators)
        from pattern in Gen.Frequency(
            (5, Value(1)),
            (1, Gen.Constant<object?>("{{ trigger.b }}")),
            (1, Gen.Constant<object?>("^a")))
        select MakeCriterion(path, op, op == "regex" && pattern is not string ? "a" : pattern);

    private static readonly Gen<RuleDefinition[]> RulesGen =
        from count in Gen.Choose(1, 14)
        from rules in Gen.ListOf(
            from size in Gen.Frequency((1, Gen.Constant(0)), (5, Gen.Constant(1)), (3, Gen.Constant(2)), (1, Gen.Constant(3)))
            from criteria in Gen.ListOf(CriterionGen, size)
            from enabled in Gen.Frequency((9, Gen.Constant(true)), (1, Gen.Constant(false)))
            from backstop in Gen.Frequency((8, Gen.Constant(false)), (1, Gen.Constant(true)))
            select (criteria, enabled, backstop), count)
        select rules.Select((r, i) => new RuleDefinition("p", $"r{i}", "", r.enabled, r.backstop, "core.st2.webhook",
            new JsonObject { ["url"] = "h" }, [.. r.criteria], "core.noop", new Dictionary<string, TemplatedValue>(), "r.yaml")).ToArray();

    private static readonly Gen<JsonNode?> PayloadGen =
        Gen.Frequency(
            (1, Gen.Constant<JsonNode?>(new JsonObject())),
            (12, from a in Value(1)
                 from b in Value(0)
                 from d in Value(1)
                 from list in Gen.ListOf(Gen.Elements(Scalars), 2)
                 select (JsonNode?)new JsonObject
                 {
                     ["a"] = Py.ToJson(a),
                     ["b"] = Py.ToJson(b),
                     ["c"] = new JsonObject { ["d"] = Py.ToJson(d) },
                     ["list"] = Py.ToJson(list.ToList()),
                 }));

    [Property(MaxTest = 1000)]
    public Property CompiledMatcher_AgreesWithTheNaiveEvaluator() =>
        Prop.ForAll(RulesGen.ToArbitrary(), Gen.ListOf(PayloadGen, 8).ToArbitrary(), (rules, payloads) =>
        {
            foreach (var (expected, actual, payload) in Compare(rules, payloads))
            {
                if (!expected.SequenceEqual(actual))
                {
                    return false.Label($"payload {payload?.ToJsonString()}: naive [{string.Join(", ", expected)}] compiled [{string.Join(", ", actual)}]; rules: " +
                        string.Join(" | ", rules.Select(r => $"{r.Ref}{(r.Enabled ? "" : " off")}{(r.IsBackstop ? " backstop" : "")}: " +
                            string.Join(", ", r.Criteria.Select(c => $"{c.Key} {c.Operator.Name} {Py.Repr(c.Pattern)}")))));
                }
            }

            return true.ToProperty();
        });

    [Fact]
    public void PropertyTest_GeneratesRulesThatMatch_SoItCanFail()
    {
        var samples = Gen.Sample(Gen.Zip(RulesGen, Gen.ListOf(PayloadGen, 8)), 300);
        var results = samples.SelectMany(s => Compare(s.Item1, s.Item2)).ToList();

        var withMatches = results.Count(r => r.Expected.Count > 0);
        Assert.True(withMatches > results.Count / 3, $"only {withMatches} of {results.Count} evaluations matched any rule");
    }

    private static IEnumerable<(List<string> Expected, List<string> Actual, JsonNode? Payload)> Compare(RuleDefinition[] rules, IEnumerable<JsonNode?> payloads)
    {
        var catalog = new PackCatalog([], [], [], rules);
        var compiled = new CompiledRuleEvaluator(catalog, Matcher);
        var naive = new NaiveRuleEvaluator(catalog, Matcher);
        foreach (var payload in payloads)
        {
            var parameters = new JsonObject { ["url"] = "h" };
            yield return (
                [.. naive.Evaluate("core.st2.webhook", parameters, payload).Select(r => r.Ref).Order()],
                [.. compiled.Evaluate("core.st2.webhook", parameters, payload).Select(r => r.Ref).Order()],
                payload);
        }
    }

    public static TheoryData<string> IndexedOperators() => ["equals", "iequals", "startswith", "istartswith", "exists", "inside"];

    /// <summary>
    /// Every compilable operator, as a rule's anchor and as a secondary check, against every pattern and value of the
    /// vocabulary (lists included): exhaustive where the property test samples.
    /// </summary>
    [Theory]
    [MemberData(nameof(IndexedOperators))]
    public void EachCompiledOperator_AgreesWithTheNaiveEvaluator_OnEveryVocabularyPair(string op)
    {
        object?[] patterns = [.. Scalars, new List<object?> { "a", 1L, null }, new List<object?> { "A", 2.5 }, new List<object?>()];
        object?[] values = [.. Scalars, new List<object?> { "a" }, new OrderedDictionary<string, object?> { ["a"] = 1L }];
        var rules = patterns.SelectMany((pattern, i) => new[]
        {
            Rule($"alone{i}", MakeCriterion("trigger.v", op, pattern)),
            // A field only this rule uses is the cheapest anchor, so the operator under test is a secondary check.
            Rule($"checked{i}", MakeCriterion($"trigger.k{i}", "equals", 7L), MakeCriterion("trigger.v", op, pattern)),
        }).ToArray();
        var catalog = new PackCatalog([], [], [], rules);
        var compiled = new CompiledRuleEvaluator(catalog, Matcher);
        var naive = new NaiveRuleEvaluator(catalog, Matcher);
        var parameters = new JsonObject { ["url"] = "h" };

        foreach (var value in values)
        {
            var payload = new JsonObject { ["v"] = Py.ToJson(value) };
            for (var i = 0; i < patterns.Length; i++)
            {
                payload[$"k{i}"] = 7;
            }

            var expected = naive.Evaluate("core.st2.webhook", parameters, payload).Select(r => r.Ref).Order().ToList();
            var actual = compiled.Evaluate("core.st2.webhook", parameters, payload).Select(r => r.Ref).Order().ToList();
            Assert.True(expected.SequenceEqual(actual), $"{op} on value {Py.Repr(value)}: naive [{string.Join(", ", expected)}] compiled [{string.Join(", ", actual)}]");
        }
    }

    private static RuleDefinition Rule(string name, params Criterion[] criteria) =>
        new("p", name, "", true, false, "core.st2.webhook", new JsonObject { ["url"] = "h" }, criteria, "core.noop", new Dictionary<string, TemplatedValue>(), "r.yaml");

    [Fact]
    public void TenThousandEqualityRules_OnlyTheMatchingOnesAreEvaluated()
    {
        var rules = Enumerable.Range(0, 10_000).Select(i => new RuleDefinition("p", $"r{i}", "", true, false, "core.st2.webhook", new JsonObject { ["url"] = "h" },
            [MakeCriterion("trigger.id", "equals", (long)i), MakeCriterion("trigger.name", "regex", "^svc")], "core.noop", new Dictionary<string, TemplatedValue>(), "r.yaml")).ToArray();
        var compiled = new CompiledRuleEvaluator(new PackCatalog([], [], [], rules), Matcher);

        var matched = compiled.Evaluate("core.st2.webhook", new JsonObject { ["url"] = "h" }, JsonNode.Parse("""{"id": 4242, "name": "svc-a"}"""));

        Assert.Equal("p.r4242", Assert.Single(matched).Ref);
    }

    internal static Criterion MakeCriterion(string path, string op, object? pattern)
    {
        CriteriaOperator.TryGet(op, out var criteriaOperator);
        if (pattern is string text && Template.LooksLikeTemplate(text))
        {
            return new Criterion(path, PayloadPath.Parse(path), criteriaOperator, pattern, SourcePosition.Unknown) { PatternTemplate = CriteriaPatternTemplate.Parse(text) };
        }

        object? compiled = null;
        try
        {
            compiled = pattern is null ? null : criteriaOperator.Compile?.Invoke(pattern);
        }
        catch (PyTypeError)
        {
            // The loader would refuse this pattern; at run time it simply never matches.
        }

        return new Criterion(path, PayloadPath.Parse(path), criteriaOperator, pattern, SourcePosition.Unknown) { CompiledPattern = compiled };
    }
}
