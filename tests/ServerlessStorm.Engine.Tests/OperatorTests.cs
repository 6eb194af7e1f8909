namespace ServerlessStorm.Engine.Tests;

/// <summary>Each criteria operator against StackStorm's semantics (st2common/operators.py under Python 3).</summary>
public class OperatorTests
{
    [Theory]
    [InlineData("equals", "storm", "\"storm\"", true)]
    [InlineData("eq", "storm", "\"storm\"", true)]
    [InlineData("EQUALS", "Storm", "\"storm\"", false)]
    [InlineData("equals", "'1'", "1", false)]
    [InlineData("equals", "1", "\"1\"", false)]
    [InlineData("equals", "1", "1.0", true)]
    [InlineData("equals", "true", "1", true)]
    [InlineData("equals", "null", "null", false)]
    [InlineData("equals", "[1, 2]", "[1, 2]", true)]
    [InlineData("equals", "{a: 1}", "{\"a\": 1}", true)]
    [InlineData("equals", "café", "\"café\"", true)]
    [InlineData("nequals", "storm", "\"other\"", true)]
    [InlineData("neq", "storm", "\"storm\"", false)]
    [InlineData("nequals", "null", "\"x\"", true)]
    [InlineData("nequals", "null", "null", false)]
    [InlineData("iequals", "STORM", "\"storm\"", true)]
    [InlineData("ieq", "1", "1", false)]
    [InlineData("iequals", "null", "null", false)]
    public void Equality(string op, string pattern, string value, bool expected) => Assert.Equal(expected, RuleYaml.Matches(op, pattern, value));

    [Theory]
    [InlineData("contains", "tor", "\"storm\"", true)]
    [InlineData("contains", "b", "[\"a\", \"b\"]", true)]
    [InlineData("contains", "c", "[\"a\", \"b\"]", false)]
    [InlineData("contains", "1", "[1, 2]", true)]
    [InlineData("contains", "'1'", "[1, 2]", false)]
    [InlineData("contains", "k", "{\"k\": 1}", true)]
    [InlineData("contains", "x", "5", false)]
    [InlineData("contains", "x", "null", false)]
    [InlineData("contains", "1", "\"123\"", false)]
    [InlineData("ncontains", "z", "\"storm\"", true)]
    [InlineData("ncontains", "x", "null", false)]
    [InlineData("ncontains", "null", "\"x\"", false)]
    [InlineData("icontains", "TOR", "\"Storm\"", true)]
    [InlineData("icontains", "x", "[\"X\"]", false)]
    [InlineData("incontains", "TOR", "\"Storm\"", false)]
    [InlineData("incontains", "z", "\"Storm\"", true)]
    public void Containment(string op, string pattern, string value, bool expected) => Assert.Equal(expected, RuleYaml.Matches(op, pattern, value));

    [Theory]
    [InlineData("startswith", "st", "\"storm\"", true)]
    [InlineData("startswith", "St", "\"storm\"", false)]
    [InlineData("istartswith", "St", "\"storm\"", true)]
    [InlineData("startswith", "1", "123", false)]
    [InlineData("endswith", "rm", "\"storm\"", true)]
    [InlineData("iendswith", "RM", "\"storm\"", true)]
    [InlineData("endswith", "[rm]", "\"storm\"", false)]
    public void Affixes(string op, string pattern, string value, bool expected) => Assert.Equal(expected, RuleYaml.Matches(op, pattern, value));

    [Theory]
    [InlineData("lessthan", "5", "3", true)]
    [InlineData("lt", "5", "5", false)]
    [InlineData("lessthan", "5.5", "5", true)]
    [InlineData("greaterthan", "5", "7", true)]
    [InlineData("gt", "b", "\"c\"", true)]
    [InlineData("greaterthan", "5", "\"7\"", false)]
    [InlineData("lessthan", "5", "null", false)]
    [InlineData("lessthan", "[1, 3]", "[1, 2]", true)]
    [InlineData("greaterthan", "0", "true", true)]
    public void Ordering(string op, string pattern, string value, bool expected) => Assert.Equal(expected, RuleYaml.Matches(op, pattern, value));

    [Theory]
    [InlineData("matchwildcard", "'st*'", "\"storm\"", true)]
    [InlineData("matchwildcard", "'ST*'", "\"storm\"", false)]
    [InlineData("matchwildcard", "'st?rm'", "\"storm\"", true)]
    [InlineData("matchwildcard", "'[st]torm'", "\"storm\"", true)]
    [InlineData("matchwildcard", "'[!s]torm'", "\"storm\"", false)]
    [InlineData("matchwildcard", "'*.log'", "\"a.log\\nb\"", false)]
    [InlineData("matchwildcard", "'*'", "5", false)]
    [InlineData("regex", "'or'", "\"storm\"", true)]
    [InlineData("regex", "'^or'", "\"storm\"", false)]
    [InlineData("regex", "'(?P<first>s)t(?P=first)?'", "\"storm\"", true)]
    [InlineData("regex", "'OR'", "\"storm\"", false)]
    [InlineData("iregex", "'OR'", "\"storm\"", true)]
    [InlineData("regex", "'s'", "5", false)]
    [InlineData("matchregex", "'or'", "\"storm\"", false)]
    [InlineData("matchregex", "'st.rm'", "\"st\\nrm\"", true)]
    [InlineData("regex", "'st.rm'", "\"st\\nrm\"", false)]
    [InlineData("regex", "'^\\d+\\Z'", "\"42\\n\"", false)]
    [InlineData("regex", "'ü'", "\"grüß\"", true)]
    public void PatternsAndRegexes(string op, string pattern, string value, bool expected) => Assert.Equal(expected, RuleYaml.Matches(op, pattern, value));

    [Theory]
    [InlineData("exists", "null", "\"x\"", true)]
    [InlineData("exists", "null", "0", true)]
    [InlineData("exists", "null", "null", false)]
    [InlineData("nexists", "null", "null", true)]
    [InlineData("nexists", "null", "false", false)]
    [InlineData("inside", "[a, b]", "\"a\"", true)]
    [InlineData("in", "[1, 2]", "1.0", true)]
    [InlineData("inside", "[1, 2]", "\"1\"", false)]
    [InlineData("inside", "storm", "\"tor\"", true)]
    [InlineData("inside", "storm", "5", false)]
    [InlineData("ninside", "[a, b]", "\"c\"", true)]
    [InlineData("nin", "[a, b]", "\"a\"", false)]
    [InlineData("ninside", "null", "\"a\"", false)]
    public void PresenceAndMembership(string op, string pattern, string value, bool expected) => Assert.Equal(expected, RuleYaml.Matches(op, pattern, value));

    [Fact]
    public void MissingKey_IsNullForEveryOperator()
    {
        var rule = RuleYaml.FromCriteria("trigger.missing:\n  type: nexists");
        var equals = RuleYaml.FromCriteria("trigger.missing:\n  type: equals\n  pattern: x");

        Assert.True(RuleYaml.Matcher.Match(rule, System.Text.Json.Nodes.JsonNode.Parse("""{"a": 1}""")).IsMatch);
        Assert.False(RuleYaml.Matcher.Match(equals, System.Text.Json.Nodes.JsonNode.Parse("""{"a": 1}""")).IsMatch);
    }

    [Theory]
    [InlineData("timediff_lt", "3600", -60, true)]
    [InlineData("td_lt", "30", -60, false)]
    [InlineData("timediff_gt", "30", -60, true)]
    [InlineData("td_gt", "'3600'", -60, false)]
    public void TimeDifference_ComparesSecondsSinceTheValue(string op, string pattern, int offsetSeconds, bool expected)
    {
        var at = DateTimeOffset.UtcNow.AddSeconds(offsetSeconds).ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(expected, RuleYaml.Matches(op, pattern, $"\"{at}\""));
    }

    [Fact]
    public void PathologicalRegex_CostsANoMatchAndNothingMore()
    {
        var backtracking = RuleYaml.FromCriteria("trigger.v:\n  type: regex\n  pattern: '(a+)+\\1$'");
        var nonBacktracking = RuleYaml.FromCriteria("trigger.v:\n  type: regex\n  pattern: '(a+)+$'");
        var payload = new System.Text.Json.Nodes.JsonObject { ["v"] = new string('a', 30_000) + "!" };

        var slow = RuleYaml.Matcher.Match(backtracking, payload);
        var fast = RuleYaml.Matcher.Match(nonBacktracking, payload);

        Assert.False(slow.IsMatch);
        Assert.Contains("timed out", slow.Reason);
        Assert.False(fast.IsMatch);
        Assert.Contains("did not match", fast.Reason);
    }

    [Fact]
    public void UnknownOperator_IsALoadErrorListingTheValidOnes()
    {
        var (_, problems) = RuleYaml.Load("trigger.v:\n  type: looksLike\n  pattern: 1");

        var problem = Assert.Single(problems);
        Assert.Equal("criteria.trigger.v.type", problem.Field);
        Assert.Equal(6, problem.Position.Line);
        Assert.Contains("unknown operator 'looksLike'", problem.Message);
        foreach (var name in new[] { "equals", "iequals", "matchwildcard", "timediff_lt", "ninside", "search" })
        {
            Assert.Contains(name, problem.Message);
        }
    }

    [Fact]
    public void InvalidRegex_IsALoadError()
    {
        var (_, problems) = RuleYaml.Load("trigger.v:\n  type: regex\n  pattern: '(unclosed'");

        Assert.Contains("invalid pattern for regex", Assert.Single(problems).Message);
    }
}
