using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Rules;

/// <summary>Which rules a trigger instance fires: the standard rules that match it, else the backstop rules that do.</summary>
public interface IRuleEvaluator
{
    IReadOnlyList<RuleDefinition> Evaluate(string triggerType, JsonObject? triggerParameters, JsonNode? payload);
}

/// <summary>The reference: every rule bound to the trigger is matched criterion by criterion.</summary>
public sealed class NaiveRuleEvaluator(PackCatalog catalog, RuleMatcher matcher) : IRuleEvaluator
{
    public IReadOnlyList<RuleDefinition> Evaluate(string triggerType, JsonObject? triggerParameters, JsonNode? payload)
    {
        var value = Py.FromJson(payload);
        var rules = catalog.RulesFor(triggerType, triggerParameters).Where(r => r.Enabled).ToList();
        var matched = rules.Where(r => !r.IsBackstop && matcher.Match(r, value).IsMatch).ToList();
        return matched.Count > 0 ? matched : [.. rules.Where(r => r.IsBackstop && matcher.Match(r, value).IsMatch)];
    }
}
