using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Tests;

public class ParameterResolverTests
{
    private static readonly ActionDefinition Action = new("t", "a", "noop", null, "", true, new Dictionary<string, ParameterDefinition>
    {
        ["name"] = new("name", "string", true, null, false, false, null, null, null),
        ["count"] = new("count", "integer", false, JsonValue.Create(1), false, false, null, null, null),
        ["level"] = new("level", "string", false, null, false, false, null, new JsonArray("low", "high"), null),
        ["fixed"] = new("fixed", "string", false, JsonValue.Create("f"), false, true, null, null, null),
        ["flag"] = new("flag", "boolean", false, null, false, false, null, null, null),
        ["body"] = new("body", "string|object", false, null, false, false, null, null, null),
    }, "a.yaml");

    [Fact]
    public void Resolve_AppliesDefaultsAndCastsRenderedText()
    {
        var resolved = ParameterResolver.Resolve(Action, new JsonObject { ["name"] = "x", ["count"] = "42", ["flag"] = "true", ["body"] = new JsonObject { ["k"] = 1 } });

        Assert.Equal(42, resolved["count"]!.GetValue<long>());
        Assert.True(resolved["flag"]!.GetValue<bool>());
        Assert.Equal("f", resolved["fixed"]!.GetValue<string>());
        Assert.IsType<JsonObject>(resolved["body"]);
    }

    [Fact]
    public void Resolve_ReportsEveryProblemTogether()
    {
        var error = Assert.Throws<ParameterValidationException>(() => ParameterResolver.Resolve(Action,
            new JsonObject { ["count"] = "many", ["level"] = "medium", ["fixed"] = "x", ["colour"] = "red" }));

        Assert.Equal(5, error.Problems.Count);
        Assert.Contains(error.Problems, p => p.Contains("'name' is required", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("'count' must be an integer, got the string \"many\"", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("'level' must be one of", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("'fixed' is immutable", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("'colour' is not a parameter of t.a", StringComparison.Ordinal));
    }
}
