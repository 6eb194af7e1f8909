using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Packs;

/// <summary>Everything the loaded packs define, indexed for the engine's lookups.</summary>
public sealed class PackCatalog
{
    private readonly Dictionary<string, List<RuleDefinition>> _rulesByTrigger;

    public PackCatalog(
        IEnumerable<PackDefinition> packs,
        IEnumerable<ActionDefinition> actions,
        IEnumerable<TriggerTypeDefinition> triggerTypes,
        IEnumerable<RuleDefinition> rules,
        IEnumerable<ActionPolicy>? policies = null,
        IEnumerable<WebhookDefinition>? webhooks = null,
        IEnumerable<Sensors.SensorDefinition>? sensors = null)
    {
        Sensors = [.. (sensors ?? []).OrderBy(s => s.Ref, StringComparer.Ordinal)];
        Webhooks = (webhooks ?? []).ToDictionary(w => w.Url, StringComparer.Ordinal);
        var all = (policies ?? []).ToList();
        RetryPolicies = ByAction(all.OfType<RetryPolicy>());
        ConcurrencyPolicies = ByAction(all.OfType<ConcurrencyPolicy>());
        Packs = packs.ToDictionary(p => p.Name, StringComparer.Ordinal);
        Actions = actions.ToDictionary(a => a.Ref, StringComparer.Ordinal);
        TriggerTypes = triggerTypes.ToDictionary(t => t.Ref, StringComparer.Ordinal);
        Rules = [.. rules];
        _rulesByTrigger = Rules.GroupBy(r => r.TriggerType, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
    }

    /// <summary>The same content, with the report of how its packs loaded.</summary>
    public PackCatalog(PackCatalog catalog, IReadOnlyList<PackLoadStatus> loadReport)
        : this(catalog.Packs.Values, catalog.Actions.Values, catalog.TriggerTypes.Values, catalog.Rules,
            [.. catalog.RetryPolicies.Values.SelectMany(p => p), .. catalog.ConcurrencyPolicies.Values.SelectMany(p => p)], catalog.Webhooks.Values, catalog.Sensors)
    {
        LoadReport = loadReport;
    }

    public static PackCatalog Empty { get; } = new([], [], [], []);

    public IReadOnlyDictionary<string, PackDefinition> Packs { get; }

    /// <summary>Every pack folder read at start: which loaded, and why the others were left out.</summary>
    public IReadOnlyList<PackLoadStatus> LoadReport { get; init; } = [];

    public IReadOnlyDictionary<string, ActionDefinition> Actions { get; }

    public IReadOnlyDictionary<string, TriggerTypeDefinition> TriggerTypes { get; }

    public IReadOnlyList<RuleDefinition> Rules { get; }

    /// <summary>The sensors packs declare (enabled or not), by ref.</summary>
    public IReadOnlyList<Sensors.SensorDefinition> Sensors { get; }

    /// <summary>The webhooks packs declare, by url; a hook not here takes an API key or token.</summary>
    public IReadOnlyDictionary<string, WebhookDefinition> Webhooks { get; }

    /// <summary>The enabled retry policies, by the action they apply to.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<RetryPolicy>> RetryPolicies { get; }

    /// <summary>The enabled concurrency policies, by the action they apply to.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<ConcurrencyPolicy>> ConcurrencyPolicies { get; }

    /// <summary>The rules bound to a trigger: same type, and the same trigger parameters when the trigger has them.</summary>
    public IEnumerable<RuleDefinition> RulesFor(string triggerType, JsonObject? triggerParameters)
    {
        if (!_rulesByTrigger.TryGetValue(triggerType, out var rules))
        {
            return [];
        }

        return triggerParameters is null
            ? rules
            : rules.Where(r => JsonNode.DeepEquals(r.TriggerParameters, triggerParameters));
    }

    /// <summary>True when an enabled rule listens on the webhook <paramref name="hook"/>.</summary>
    public bool HasWebhook(string hook) =>
        RulesFor(CoreTriggers.Webhook, null).Any(r => r.Enabled && WebhookUrl(r) == hook);

    public static string? WebhookUrl(RuleDefinition rule) =>
        rule.TriggerParameters["url"] is JsonValue v && v.TryGetValue<string>(out var url) ? url.Trim('/') : null;

    private static Dictionary<string, IReadOnlyList<T>> ByAction<T>(IEnumerable<T> policies) where T : ActionPolicy =>
        policies.GroupBy(p => p.ResourceRef, StringComparer.Ordinal).ToDictionary(g => g.Key, g => (IReadOnlyList<T>)[.. g], StringComparer.Ordinal);
}
