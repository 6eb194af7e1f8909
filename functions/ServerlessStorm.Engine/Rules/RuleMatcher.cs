using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Rules;

/// <summary>The outcome of matching one rule: whether it matched and, if not, which criterion failed and why.</summary>
public sealed record RuleMatch(bool IsMatch, string? Reason)
{
    public static readonly RuleMatch Matched = new(true, null);
}

/// <summary>Evaluates a rule's criteria against a trigger payload, criterion by criterion; all must match.</summary>
public sealed partial class RuleMatcher(ILogger<RuleMatcher> logger)
{
    public RuleMatch Match(RuleDefinition rule, JsonNode? payload)
    {
        if (!rule.Enabled)
        {
            return new RuleMatch(false, "the rule is disabled");
        }

        foreach (var criterion in rule.Criteria)
        {
            // Criteria keys are written against the trigger ("trigger.body.x"); the payload is the trigger.
            var value = criterion.Path.Root == "trigger"
                ? criterion.Path.Resolve(payload, out var found)
                : ResolveMissing(out found);
            bool matched;
            try
            {
                matched = criterion.Operator.Evaluate(value, found, criterion.Pattern, criterion.CompiledPattern);
            }
            catch (RegexMatchTimeoutException)
            {
                LogRegexTimeout(logger, rule.Ref, criterion.Key);
                return new RuleMatch(false, $"criterion '{criterion.Key}' ({criterion.Operator.Name}): the regex timed out");
            }

            if (!matched)
            {
                return new RuleMatch(false, $"criterion '{criterion.Key}' ({criterion.Operator.Name}) did not match");
            }
        }

        return RuleMatch.Matched;
    }

    private static JsonNode? ResolveMissing(out bool found)
    {
        found = false;
        return null;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Rule {Rule}: the regex of criterion {Key} timed out; counted as no match")]
    private static partial void LogRegexTimeout(ILogger logger, string rule, string key);
}
