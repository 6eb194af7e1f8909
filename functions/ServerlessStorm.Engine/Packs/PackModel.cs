using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Packs;

/// <summary>One problem found while loading packs: the file, the position, the field and what is wrong.</summary>
public sealed record PackProblem(string File, SourcePosition Position, string? Field, string Message)
{
    public override string ToString() =>
        $"{File}:{Position}: {(Field is null ? "" : Field + ": ")}{Message}";
}

public sealed record PackDefinition(string Name, string Version, string Description, string Directory);

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
    int? Position);

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

/// <summary>One criterion of a rule: a payload key, an operator and its pattern.</summary>
public sealed record Criterion(string Key, PayloadPath Path, CriteriaOperator Operator, JsonNode? Pattern, SourcePosition Position)
{
    /// <summary>Compiled form of the pattern for operators that need one (a regex); built once at load.</summary>
    internal object? CompiledPattern { get; init; }
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
