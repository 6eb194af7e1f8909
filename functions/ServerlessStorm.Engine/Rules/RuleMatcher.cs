using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Rules;

/// <summary>The outcome of matching one rule: whether it matched and, if not, which criterion failed and why.</summary>
public sealed record RuleMatch(bool IsMatch, string? Reason)
{
    public static readonly RuleMatch Matched = new(true, null);
}

/// <summary>
/// Evaluates a rule's criteria against a trigger payload, criterion by criterion, exactly as StackStorm's rule filter
/// does; all must match. This is the reference evaluator: the compiled matcher must agree with it on every input.
/// </summary>
public sealed class RuleMatcher(ILogger<RuleMatcher> logger, IKeyValueLookup? keyValues = null)
{
    public const string TriggerRoot = "trigger";
    public const string ItemRoot = "item";

    private static readonly HashSet<string> Conditions = ["any", "all", "any2any", "all2any"];

    public RuleMatch Match(RuleDefinition rule, JsonNode? payload) => Match(rule, Py.FromJson(payload));

    /// <summary>Matches a payload already converted to the expression model (convert once, match many rules).</summary>
    public RuleMatch Match(RuleDefinition rule, object? payload)
    {
        if (!rule.Enabled)
        {
            return new RuleMatch(false, "the rule is disabled");
        }

        // StackStorm: a rule with criteria never matches an empty payload.
        if (rule.Criteria.Count > 0 && !Py.Truthy(payload))
        {
            return new RuleMatch(false, "the trigger instance has an empty payload");
        }

        foreach (var criterion in rule.Criteria)
        {
            var (matched, reason) = Check(criterion, TriggerRoot, payload, rule.Ref);
            if (!matched)
            {
                return new RuleMatch(false, reason);
            }
        }

        return RuleMatch.Matched;
    }

    /// <summary>Checks one criterion against the value under <paramref name="root"/> (<c>trigger</c>, or <c>item</c> inside a search).</summary>
    internal (bool Matched, string? Reason) Check(Criterion criterion, string root, object? rootValue, string ruleRef) =>
        Check(criterion, root, () => rootValue, criterion.Path.Root == root ? criterion.Path.Resolve(rootValue) : null, ruleRef);

    /// <summary>
    /// Checks one criterion given the value at its key, already resolved; the whole root value is asked for only
    /// when a templated pattern needs it as its scope.
    /// </summary>
    internal (bool Matched, string? Reason) Check(Criterion criterion, string root, Func<object?> rootValue, object? value, string ruleRef)
    {
        string Label() => $"criterion '{criterion.Key}' ({criterion.Operator.Name})";
        object? pattern;
        try
        {
            pattern = criterion.PatternTemplate is { } template
                ? template.Render(new TemplateScope { KeyValues = keyValues }.SetValue(root, rootValue()))
                : criterion.Pattern;
        }
        catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
        {
            logger.RuleCriterionPatternNotRendered(ruleRef, criterion.Key, ex.Message);
            return (false, $"{Label()}: its pattern could not be rendered: {ex.Message}");
        }

        try
        {
            var matched = criterion.Operator.IsSearch
                ? Search(criterion, value, pattern, ruleRef)
                : criterion.Operator.Evaluate(value, pattern, criterion.Operator.Compiled(pattern, criterion.CompiledPattern));
            return matched ? (true, null) : (false, $"{Label()} did not match");
        }
        catch (RegexMatchTimeoutException)
        {
            logger.RuleCriterionRegexTimedOut(ruleRef, criterion.Key);
            return (false, $"{Label()}: the regex timed out");
        }
        catch (Exception ex) when (ex is PyTypeError or ArgumentException)
        {
            // Python raises here (a TypeError, a bad regex); StackStorm counts the criterion as not matched.
            logger.RuleCriterionNotEvaluated(ruleRef, criterion.Key, ex.Message);
            return (false, $"{Label()}: {ex.Message}");
        }
    }

    private bool Search(Criterion criterion, object? value, object? pattern, string ruleRef)
    {
        if (!Conditions.Contains(criterion.Condition ?? ""))
        {
            throw new ArgumentException($"the '{criterion.Condition}' condition is not recognized for type search; 'any', 'all', 'any2any' and 'all2any' are allowed");
        }

        IEnumerable<object?> items = value switch
        {
            OrderedDictionary<string, object?> dict => [dict],
            List<object?> list => list,
            string s => s.Select(c => (object?)c.ToString()),
            _ => throw new PyTypeError($"'{Py.TypeName(value)}' object is not iterable"),
        };

        // Python builds every result before any()/all(), so each child runs for each item.
        var results = items.Select(item => criterion.Children.Select(child => Check(child, ItemRoot, item, ruleRef).Matched).ToList()).ToList();
        var anyPattern = criterion.Condition is "any2any" or "all2any";
        var anyItem = criterion.Condition is "any" or "any2any";
        bool ItemMatches(List<bool> r) => anyPattern ? r.Any(x => x) : r.All(x => x);
        return anyItem ? results.Any(ItemMatches) : results.All(ItemMatches);
    }
}
