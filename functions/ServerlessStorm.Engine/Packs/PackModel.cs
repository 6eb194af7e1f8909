using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Packs;

/// <summary>One problem found while loading packs: the file, the position, the field and what is wrong.</summary>
public sealed record PackProblem(string File, SourcePosition Position, string? Field, string Message)
{
    /// <summary>Another file the problem is as much about (the first definition of a name defined twice).</summary>
    public string? AlsoConcerns { get; init; }

    public override string ToString() =>
        $"{File}:{Position}: {(Field is null ? "" : Field + ": ")}{Message}";
}

/// <summary>One pack folder as the loader found it: loaded, or left out for its problems; and what it warned of.</summary>
public sealed record PackLoadStatus(string Name, string Directory, bool Loaded, IReadOnlyList<PackProblem> Problems, IReadOnlyList<PackProblem> Warnings);

public sealed record PackDefinition(string Name, string Version, string Description, string Directory)
{
    /// <summary>
    /// The pack's configuration as written (configs/&lt;pack&gt;.yaml, else its own config.yaml) with its schema's
    /// defaults: templated values are still templates. What pack code and templates see comes from
    /// <see cref="PackConfigService"/>, which renders them for each use.
    /// </summary>
    public JsonObject Config { get; init; } = [];

    /// <summary>The pack's config.schema.yaml, or null when it has none.</summary>
    public PackConfigSchema? ConfigSchema { get; init; }

    /// <summary>Where the config's values were read (configs/&lt;pack&gt;.yaml, a blob, the pack's config.yaml), or null when there were none.</summary>
    public string? ConfigLocation { get; init; }

    /// <summary>Networks the pack's HTTP actions may reach although the egress guard refuses them by default.</summary>
    public IReadOnlyList<System.Net.IPNetwork> AllowedNetworks { get; init; } = [];
}

/// <summary>A parameter of an action, in StackStorm's metadata format.</summary>
public sealed record ParameterDefinition(
    string Name,
    string Type,
    bool Required,
    JsonNode? Default,
    bool Secret,
    bool Immutable,
    string? Description,
    JsonArray? Enum,
    int? Position)
{
    /// <summary>The parameter's other JSON Schema keywords (minimum, pattern, items, …) that its value must meet, or null.</summary>
    public JsonObject? Schema { get; init; }

    /// <summary>
    /// A runner parameter StackStorm leaves to each action to declare (the http runner's <c>method</c>, <c>body</c>,
    /// <c>params</c>, <c>timeout</c>): given here as a default, an action may declare it with any type.
    /// </summary>
    public bool ActionDeclares { get; init; }
}

public sealed record ActionDefinition(
    string Pack,
    string Name,
    string RunnerType,
    string? EntryPoint,
    string Description,
    bool Enabled,
    IReadOnlyDictionary<string, ParameterDefinition> Parameters,
    string SourceFile)
{
    public string Ref => $"{Pack}.{Name}";

    /// <summary>StackStorm's <c>notify</c>: what to announce on success, on failure and on completion.</summary>
    public IReadOnlyList<NotifySetting> Notify { get; init; } = [];

    /// <summary>
    /// The JSON schema the runner's output (its <see cref="Actions.IActionRunner.OutputKey"/> value) must match, or
    /// null. StackStorm's short form — a mapping of property schemas — is stored as the object schema it means.
    /// </summary>
    public JsonObject? OutputSchema { get; init; }
}

/// <summary>One <c>notify</c> entry: when (on-success, on-failure, on-complete), the message, data and routes.</summary>
public sealed record NotifySetting(string When, TemplatedValue Message, TemplatedValue Data, IReadOnlyList<string> Routes);

/// <summary>
/// How a webhook's deliveries are verified: the signing scheme, the datastore keys holding its secrets (several
/// while a secret is rotated), and how old a timestamped delivery may be.
/// </summary>
public sealed record WebhookVerification(string Scheme, IReadOnlyList<string> SecretKeys, TimeSpan Tolerance);

/// <summary>
/// A webhook a pack declares (<c>webhooks/*.yaml</c>): its url (the hook name rules listen on) and how its senders
/// prove themselves — a signature instead of an API key, or both. Hooks without one take an API key or token.
/// </summary>
public sealed record WebhookDefinition(string Pack, string Url, string Description, WebhookVerification? Verify, bool RequireApiKey, string? User, string SourceFile)
{
    /// <summary>Who the audit records for a verified delivery.</summary>
    public string Sender => User ?? $"webhook:{Url}";
}

public sealed record TriggerTypeDefinition(
    string Pack,
    string Name,
    string Description,
    JsonObject? ParametersSchema,
    JsonObject? PayloadSchema,
    string SourceFile)
{
    public string Ref => $"{Pack}.{Name}";
}

/// <summary>
/// One criterion of a rule: a payload key (its <c>#tag</c> suffix already stripped from <see cref="Path"/>), an
/// operator and its pattern, in the expression model. A search criterion has a condition and child criteria keyed
/// <c>item.…</c>.
/// </summary>
public sealed record Criterion(string Key, PayloadPath Path, CriteriaOperator Operator, object? Pattern, SourcePosition Position)
{
    /// <summary>The pattern compiled once at load (a regex), when it is not a template.</summary>
    internal object? CompiledPattern { get; init; }

    /// <summary>Set when the pattern is a template, rendered against each trigger instance.</summary>
    internal CriteriaPatternTemplate? PatternTemplate { get; init; }

    /// <summary>search: any, all, any2any or all2any.</summary>
    public string? Condition { get; init; }

    /// <summary>search: the criteria each item of the list is checked against.</summary>
    public IReadOnlyList<Criterion> Children { get; init; } = [];
}

public sealed record RuleDefinition(
    string Pack,
    string Name,
    string Description,
    bool Enabled,
    bool IsBackstop,
    string TriggerType,
    JsonObject TriggerParameters,
    IReadOnlyList<Criterion> Criteria,
    string ActionRef,
    IReadOnlyDictionary<string, TemplatedValue> ActionParameters,
    string SourceFile)
{
    public string Ref => $"{Pack}.{Name}";
}

/// <summary>A policy from a pack's <c>policies/</c> folder, applied to the executions of <see cref="ResourceRef"/>.</summary>
public abstract record ActionPolicy(string Pack, string Name, string ResourceRef, string SourceFile)
{
    public string Ref => $"{Pack}.{Name}";
}

/// <summary>
/// StackStorm's <c>action.retry</c> policy: when an execution of <see cref="ActionPolicy.ResourceRef"/> ends with
/// <see cref="RetryOn"/> (failed or timeout), run it again, up to <see cref="MaxRetryCount"/> times, after
/// <see cref="Delay"/>.
/// </summary>
public sealed record RetryPolicy(string Pack, string Name, string ResourceRef, string RetryOn, int MaxRetryCount, TimeSpan Delay, string SourceFile)
    : ActionPolicy(Pack, Name, ResourceRef, SourceFile);

/// <summary>
/// StackStorm's <c>action.concurrency</c> (and <c>action.concurrency.attr</c>) policy: at most <see cref="Threshold"/>
/// executions of the action run at once across the deployment (per distinct value of <see cref="Attributes"/> when
/// it names parameters); one beyond it is delayed until a slot frees, or canceled, as <see cref="Action"/> says.
/// </summary>
public sealed record ConcurrencyPolicy(string Pack, string Name, string ResourceRef, int Threshold, string Action, IReadOnlyList<string> Attributes, string SourceFile)
    : ActionPolicy(Pack, Name, ResourceRef, SourceFile)
{
    public const string Delay = "delay";
    public const string Cancel = "cancel";
}
