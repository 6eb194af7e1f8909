using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Rules;
using Microsoft.Extensions.Logging.Abstractions;

namespace ServerlessStorm.Engine.Tests;

/// <summary>Rule-level semantics: criteria keys, #tags, templated patterns, search, empty payloads.</summary>
public class RuleCriteriaTests
{
    private static bool Matches(string criteria, string payload, RuleMatcher? matcher = null) =>
        (matcher ?? RuleYaml.Matcher).Match(RuleYaml.FromCriteria(criteria), JsonNode.Parse(payload)).IsMatch;

    [Theory]
    [InlineData("trigger.body.items[1].name", """{"body": {"items": [{"name": "a"}, {"name": "b"}]}}""")]
    [InlineData("trigger.body.items[-1].name", """{"body": {"items": [{"name": "a"}, {"name": "b"}]}}""")]
    [InlineData("trigger.headers['X-GitHub-Event']", """{"headers": {"X-GitHub-Event": "b"}}""")]
    [InlineData("trigger.body[\"a.b\"]", """{"body": {"a.b": "b"}}""")]
    [InlineData("trigger['body']['k']", """{"body": {"k": "b"}}""")]
    public void Keys_ReachNestedListAndAwkwardFields(string key, string payload) =>
        Assert.True(Matches($"\"{key.Replace("\"", "\\\"", StringComparison.Ordinal)}\":\n  type: equals\n  pattern: b", payload));

    [Fact]
    public void HashTag_LetsOneFieldCarrySeveralCriteria()
    {
        const string criteria = "trigger.n#1:\n  type: greaterthan\n  pattern: 10\ntrigger.n#2:\n  type: lessthan\n  pattern: 20";

        Assert.True(Matches(criteria, """{"n": 15}"""));
        Assert.False(Matches(criteria, """{"n": 25}"""));
    }

    [Fact]
    public void TemplatedPattern_KeepsTheRenderedType()
    {
        Assert.True(Matches("trigger.count:\n  type: equals\n  pattern: \"{{ trigger.expected }}\"", """{"count": 3, "expected": 3}"""));
        Assert.False(Matches("trigger.count:\n  type: equals\n  pattern: \"{{ trigger.expected }}\"", """{"count": "3", "expected": 3}"""));
        Assert.True(Matches("trigger.tag:\n  type: inside\n  pattern: \"{{ trigger.allowed }}\"", """{"tag": "b", "allowed": ["a", "b"]}"""));
        Assert.True(Matches("trigger.name:\n  type: equals\n  pattern: \"prefix-{{ trigger.suffix }}\"", """{"name": "prefix-x", "suffix": "x"}"""));
        Assert.True(Matches("trigger.name:\n  type: equals\n  pattern: \"{{ trigger.first }}\"", """{"name": "storm", "first": "storm"}"""));
    }

    [Fact]
    public void TemplatedPattern_CanReadTheDatastore()
    {
        var matcher = new RuleMatcher(NullLogger<RuleMatcher>.Instance, new KeyValueSnapshot(new Dictionary<string, string> { ["system.env"] = "prod" }));

        Assert.True(Matches("trigger.env:\n  type: equals\n  pattern: \"{{ st2kv.system.env }}\"", """{"env": "prod"}""", matcher));
    }

    [Fact]
    public void TemplatedPattern_ThatFailsToRender_IsNoMatchWithTheReason()
    {
        var rule = RuleYaml.FromCriteria("trigger.v:\n  type: equals\n  pattern: \"{{ trigger.nothing.deeper }}\"");

        var match = RuleYaml.Matcher.Match(rule, JsonNode.Parse("""{"v": 1}"""));

        Assert.False(match.IsMatch);
        Assert.Contains("could not be rendered", match.Reason);
    }

    [Fact]
    public void PayloadDataThatLooksLikeATemplate_IsComparedAsText()
    {
        Assert.True(Matches("trigger.v:\n  type: equals\n  pattern: '{{ (7*7) }}'", """{"v": 49}"""));
        // StackStorm appends "| to_complex" to the expression, and the filter binds to the last operand: 7 * "7".
        Assert.True(Matches("trigger.v:\n  type: equals\n  pattern: '{{ 7*7 }}'", """{"v": 7777777}"""));
        Assert.True(Matches("trigger.v:\n  type: equals\n  pattern: literal", """{"v": "literal"}"""));
        Assert.False(Matches("trigger.v:\n  type: equals\n  pattern: '49'", """{"v": "{{ 7*7 }}"}"""));
    }

    [Fact]
    public void EmptyPayload_NeverMatchesARuleWithCriteria()
    {
        Assert.False(Matches("trigger.x:\n  type: nexists", "{}"));
        Assert.True(Matches("trigger.x:\n  type: nexists", """{"y": 1}"""));
    }

    private const string Fields = """{"fields": [{"name": "Status", "to": "Approved"}, {"name": "Owner", "to": "Bob"}]}""";

    [Theory]
    [InlineData("any", "Status", "Approved", true)]
    [InlineData("any", "Status", "Bob", false)]
    [InlineData("all", "Status", "Approved", false)]
    [InlineData("any2any", "Nobody", "Bob", true)]
    [InlineData("any2any", "Nobody", "Nothing", false)]
    [InlineData("all2any", "Status", "Bob", true)]
    [InlineData("all2any", "Status", "Nothing", false)]
    public void Search_AppliesChildCriteriaToEachItem(string condition, string name, string to, bool expected)
    {
        var criteria = $"trigger.fields:\n  type: search\n  condition: {condition}\n  pattern:\n    item.name:\n      type: equals\n      pattern: {name}\n    item.to:\n      type: equals\n      pattern: {to}";

        Assert.Equal(expected, Matches(criteria, Fields));
    }

    [Fact]
    public void Search_OnADict_SearchesItAsAOneItemList_AndAllOnEmptyIsTrue()
    {
        const string criteria = "trigger.f:\n  type: search\n  condition: all\n  pattern:\n    item.n:\n      type: equals\n      pattern: 1";

        Assert.True(Matches(criteria, """{"f": {"n": 1}}"""));
        Assert.True(Matches(criteria, """{"f": []}"""));
        Assert.False(Matches(criteria, """{"f": null}"""));
    }

    [Fact]
    public void Search_ChildrenSupportTagsAndNesting()
    {
        const string criteria = """
            trigger.hosts:
              type: search
              condition: any
              pattern:
                item.load#low:
                  type: greaterthan
                  pattern: 1
                item.load#high:
                  type: lessthan
                  pattern: 5
                item.disks:
                  type: search
                  condition: any
                  pattern:
                    item.free:
                      type: lessthan
                      pattern: 10
            """;

        Assert.True(Matches(criteria, """{"hosts": [{"load": 3, "disks": [{"free": 50}, {"free": 5}]}]}"""));
        Assert.False(Matches(criteria, """{"hosts": [{"load": 3, "disks": [{"free": 50}]}]}"""));
    }

    [Fact]
    public void Search_Problems_AreLoadErrors()
    {
        var (_, badCondition) = RuleYaml.Load("trigger.f:\n  type: search\n  condition: most\n  pattern: {item.a: {type: exists}}");
        var (_, badChildKey) = RuleYaml.Load("trigger.f:\n  type: search\n  condition: any\n  pattern: {trigger.a: {type: exists}}");
        var (_, badChildOperator) = RuleYaml.Load("trigger.f:\n  type: search\n  condition: any\n  pattern: {item.a: {type: nope}}");

        Assert.Contains("unknown condition 'most'", Assert.Single(badCondition).Message);
        Assert.Contains("starts with 'item.'", Assert.Single(badChildKey).Message);
        Assert.Equal("criteria.trigger.f.pattern.item.a.type", Assert.Single(badChildOperator).Field);
    }

    [Fact]
    public void DisabledRule_NeverMatches()
    {
        var rule = RuleYaml.FromCriteria("trigger.v:\n  type: exists", extra: "enabled: false\n");

        Assert.Equal("the rule is disabled", RuleYaml.Matcher.Match(rule, JsonNode.Parse("""{"v": 1}""")).Reason);
    }
}
