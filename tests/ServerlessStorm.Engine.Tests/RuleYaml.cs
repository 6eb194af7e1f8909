using ServerlessStorm.Engine.Actions;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;

namespace ServerlessStorm.Engine.Tests;

/// <summary>Builds rules from YAML through the real loader, so tests see patterns exactly as a pack file gives them.</summary>
internal static class RuleYaml
{
    private static readonly RunnerRegistry Runners = RunnerRegistry.Default;

    public static readonly RuleMatcher Matcher = new(NullLogger<RuleMatcher>.Instance);

    public static RuleDefinition FromCriteria(string criteriaYaml, string extra = "")
    {
        var (rule, problems) = Load(criteriaYaml, extra);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        return rule!;
    }

    public static (RuleDefinition? Rule, IReadOnlyList<PackProblem> Problems) Load(string criteriaYaml, string extra = "")
    {
        var path = Path.Combine(Path.GetTempPath(), $"storm-rule-{Guid.NewGuid():N}.yaml");
        var indented = string.Join("\n", criteriaYaml.Split('\n').Select(l => "  " + l));
        File.WriteAllText(path, $"name: r\npack: t\ntrigger: {{type: core.st2.webhook, parameters: {{url: x}}}}\n{extra}criteria:\n{indented}\naction: {{ref: core.noop}}\n");
        try
        {
            return new PackLoader(Runners).LoadRule(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>One criterion on trigger.v: <c>type</c> and a YAML <c>pattern</c>, matched against {"v": value}.</summary>
    public static bool Matches(string op, string patternYaml, string valueJson)
    {
        var rule = FromCriteria($"trigger.v:\n  type: {op}\n  pattern: {patternYaml}");
        return Matcher.Match(rule, JsonNode.Parse($$"""{"v": {{valueJson}}, "other": 1}""")).IsMatch;
    }
}
