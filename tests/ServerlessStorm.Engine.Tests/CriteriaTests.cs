using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Tests;

public class CriteriaTests
{
    private static readonly RuleMatcher Matcher = new(NullLogger<RuleMatcher>.Instance);

    private static RuleDefinition Rule(string key, string op, JsonNode? pattern, bool enabled = true)
    {
        CriteriaOperator.TryGet(op, out var criteriaOperator);
        var criterion = new Criterion(key, PayloadPath.Parse(key), criteriaOperator, pattern, SourcePosition.Unknown)
        {
            CompiledPattern = criteriaOperator.Compile?.Invoke(pattern),
        };
        return new RuleDefinition("t", "r", "", enabled, false, "core.st2.webhook", [], [criterion], "core.noop",
            new Dictionary<string, TemplatedValue>(), "r.yaml");
    }

    private static bool Matches(string key, string op, JsonNode? pattern, string payload) =>
        Matcher.Match(Rule(key, op, pattern), JsonNode.Parse(payload)).IsMatch;

    [Theory]
    [InlineData("equals", "\"storm\"", """{"name": "storm"}""", true)]
    [InlineData("eq", "\"storm\"", """{"name": "storm"}""", true)]
    [InlineData("EQUALS", "\"Storm\"", """{"name": "storm"}""", false)]
    [InlineData("equals", "\"1\"", """{"name": 1}""", false)]
    [InlineData("equals", "1", """{"name": 1}""", true)]
    [InlineData("equals", "null", """{"name": null}""", false)]
    [InlineData("equals", "\"storm\"", """{}""", false)]
    [InlineData("contains", "\"tor\"", """{"name": "storm"}""", true)]
    [InlineData("contains", "\"b\"", """{"name": ["a", "b"]}""", true)]
    [InlineData("contains", "\"c\"", """{"name": ["a", "b"]}""", false)]
    [InlineData("contains", "\"x\"", """{"name": 5}""", false)]
    [InlineData("regex", "\"or\"", """{"name": "storm"}""", true)]
    [InlineData("regex", "\"^or\"", """{"name": "storm"}""", false)]
    [InlineData("regex", "\"(?P<first>s)t\"", """{"name": "storm"}""", true)]
    [InlineData("regex", "\"s\"", """{"name": 5}""", false)]
    [InlineData("exists", "null", """{"name": "x"}""", true)]
    [InlineData("exists", "null", """{"name": null}""", false)]
    [InlineData("exists", "null", """{}""", false)]
    public void Operator_FollowsStackStormSemantics(string op, string pattern, string payload, bool expected) =>
        Assert.Equal(expected, Matches("trigger.name", op, JsonNode.Parse(pattern), payload));

    [Fact]
    public void BracketKeys_ReachHeadersWithDashesAndDots()
    {
        Assert.True(Matches("trigger.headers['X-GitHub-Event']", "equals", "push", """{"headers": {"X-GitHub-Event": "push"}}"""));
        Assert.True(Matches("trigger.body[\"a.b\"][0]", "equals", 1, """{"body": {"a.b": [1]}}"""));
    }

    [Fact]
    public void DisabledRule_NeverMatches() =>
        Assert.False(Matcher.Match(Rule("trigger.name", "exists", null, enabled: false), JsonNode.Parse("""{"name": 1}""")).IsMatch);

    [Fact]
    public void PathologicalRegex_CostsANoMatchAndNothingMore()
    {
        var rule = Rule("trigger.name", "regex", "(a+)+$");
        var payload = new JsonObject { ["name"] = new string('a', 5000) + "!" };

        var match = Matcher.Match(rule, payload);

        Assert.False(match.IsMatch);
        Assert.Contains("timed out", match.Reason);
    }
}
