using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Json;

namespace ServerlessStorm.Engine.Executions;

/// <summary>Parameters were wrong; <see cref="Problems"/> names each one.</summary>
public sealed class ParameterValidationException(string actionRef, IReadOnlyList<string> problems)
    : Exception($"invalid parameters for {actionRef}: {string.Join("; ", problems)}")
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>
/// Turns what a rule or a caller supplied into the parameters an action runs with: templates rendered, defaults
/// applied, values cast to their declared types, and every problem (unknown, missing, immutable, wrong type, not in
/// enum) reported together before anything runs.
/// </summary>
public static class ParameterResolver
{
    /// <summary>
    /// The parameters a rule's action runs with for a trigger instance's <paramref name="payload"/>: what rule
    /// enforcement requests and what <c>storm rule test</c> shows, so the two cannot differ.
    /// </summary>
    public static JsonObject ForRule(ActionDefinition action, RuleDefinition rule, JsonNode? payload, string? shellCommandParameter, IKeyValueLookup? keyValues,
        JsonObject? context = null)
    {
        var scope = TemplateScope.ForTrigger(payload);
        scope.KeyValues = keyValues;
        return FromTemplates(action, rule.ActionParameters, scope, shellCommandParameter, keyValues, context);
    }

    /// <summary>
    /// What an action's parameter templates may read besides the parameters and the datastore, as in StackStorm:
    /// <c>config_context</c> (its pack's config) and <c>action_context</c> (<c>user</c>, <c>pack</c>).
    /// </summary>
    /// <param name="config">The pack's config rendered for the execution (<see cref="PackConfigService.RenderAsync"/>); null: as written.</param>
    public static JsonObject Context(PackCatalog catalog, ActionDefinition action, string? user, JsonObject? config = null) => new()
    {
        ["config_context"] = config ?? catalog.Packs.GetValueOrDefault(action.Pack)?.Config.DeepClone() ?? new JsonObject(),
        ["action_context"] = new JsonObject { ["user"] = user, ["pack"] = action.Pack },
    };

    /// <summary>
    /// <see cref="Context"/> with <c>config_context</c> rendered for execution <paramref name="executionId"/>: its
    /// datastore values read now, its secrets closed until that execution's runner opens them. A config that cannot be
    /// rendered makes the parameters invalid.
    /// </summary>
    public static async Task<JsonObject> ContextAsync(PackConfigService? configs, PackCatalog catalog, ActionDefinition action, string executionId, string? user,
        CancellationToken cancellationToken)
    {
        try
        {
            return Context(catalog, action, user, configs is null ? null : await configs.RenderAsync(action.Pack, executionId, user, cancellationToken));
        }
        catch (PackConfigException ex)
        {
            throw new ParameterValidationException(action.Ref, [ex.Message]);
        }
    }

    /// <summary>
    /// Resolves a rule's templated parameters against the trigger payload. The rendered values are data: they are
    /// never rendered again, whatever they contain. The action's own defaults may still be templates.
    /// </summary>
    public static JsonObject FromTemplates(
        ActionDefinition action,
        IReadOnlyDictionary<string, TemplatedValue> supplied,
        TemplateScope scope,
        string? shellCommandParameter,
        IKeyValueLookup? keyValues = null,
        JsonObject? context = null)
    {
        var values = new JsonObject();
        foreach (var (name, value) in supplied)
        {
            // Inside an object or array, a templated string renders to text, as StackStorm renders a rule's values.
            values[name] = value.Raw is JsonObject or JsonArray && ParameterTemplate.Compile(name, value.Raw, problems: null) is { } complex
                ? complex.Render(scope)
                : value.Render(scope);
        }

        if (shellCommandParameter is not null && supplied.TryGetValue(shellCommandParameter, out var cmd) && cmd.AsTemplate is { } template)
        {
            values[shellCommandParameter] = ShellCommandTemplate.RenderInto(template, scope, values);
        }

        return Resolve(action, values, renderSupplied: false, keyValues, shellCommandParameter, context: context);
    }

    /// <summary>
    /// Resolves parameters as StackStorm does: supplied values (rendered when <paramref name="renderSupplied"/>, as for
    /// an operator's <c>storm run</c>) and defaults may be templates over each other's values and the datastore;
    /// they are rendered in dependency order (a cycle is an error), then cast to their declared types and checked.
    /// </summary>
    /// <remarks>
    /// A templated <paramref name="shellCommandParameter"/> (a shell action's <c>cmd</c>, say a default of
    /// <c>echo {{ message }}</c>) is rendered last and through <see cref="ShellCommandTemplate"/>: the other
    /// parameters reach the shell as quoted variables, never as shell text.
    /// </remarks>
    /// <param name="renderAlso">Supplied values rendered even when <paramref name="renderSupplied"/> is false (a re-run's overrides).</param>
    /// <param name="context">Variables templates may read besides the parameters (see <see cref="Context"/>); a parameter of the same name wins.</param>
    public static JsonObject Resolve(ActionDefinition action, JsonObject supplied, bool renderSupplied = true, IKeyValueLookup? keyValues = null, string? shellCommandParameter = null,
        IReadOnlySet<string>? renderAlso = null, JsonObject? context = null)
    {
        var problems = new List<string>();
        var raw = new Dictionary<string, (JsonNode? Value, bool Render)>(StringComparer.Ordinal);
        foreach (var (name, value) in supplied)
        {
            if (!action.Parameters.TryGetValue(name, out var definition))
            {
                problems.Add($"'{name}' is not a parameter of {action.Ref} (it has: {string.Join(", ", action.Parameters.Keys)})");
                continue;
            }

            if (definition.Immutable)
            {
                problems.Add($"'{name}' is immutable and cannot be set");
                continue;
            }

            if (value is null)
            {
                continue; // null is no value: the default applies, and a required parameter is missing
            }

            raw[name] = (value.DeepClone(), renderSupplied || renderAlso?.Contains(name) == true);
        }

        foreach (var definition in action.Parameters.Values.Where(d => !raw.ContainsKey(d.Name)))
        {
            if (definition.Default is not null)
            {
                raw[definition.Name] = (definition.Default.DeepClone(), true);
            }
            else if (definition.Required)
            {
                problems.Add($"'{definition.Name}' is required");
            }
        }

        var templates = new Dictionary<string, ParameterTemplate>(StringComparer.Ordinal);
        foreach (var (name, (value, render)) in raw)
        {
            if (render && ParameterTemplate.Compile(name, value, problems) is { } compiled)
            {
                templates[name] = compiled;
            }
        }

        var result = new JsonObject();
        var scope = new TemplateScope { KeyValues = keyValues };
        foreach (var (name, value) in context ?? [])
        {
            scope.Set(name, value?.DeepClone());
        }
        Template? shellTemplate = null;
        if (shellCommandParameter is not null && templates.TryGetValue(shellCommandParameter, out var shell) && shell.Whole is { } whole)
        {
            templates.Remove(shellCommandParameter);
            shellTemplate = whole;
            raw.Remove(shellCommandParameter);
        }

        foreach (var name in DependencyOrder(templates, raw.Keys, problems))
        {
            var definition = action.Parameters[name];
            JsonNode? value;
            if (templates.TryGetValue(name, out var template))
            {
                try
                {
                    value = template.Render(scope);
                }
                catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
                {
                    problems.Add($"'{name}' could not be rendered: {ex.Message}");
                    continue;
                }
            }
            else
            {
                value = raw[name].Value;
            }

            var cast = Cast(definition, value, problems);
            if (cast is null && definition.Required && value is null)
            {
                problems.Add($"'{name}' is required, and its value rendered to null");
            }

            result[name] = cast;
            scope.Set(name, cast);
        }

        if (shellTemplate is not null)
        {
            try
            {
                result[shellCommandParameter!] = ShellCommandTemplate.RenderInto(shellTemplate, scope, result);
            }
            catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
            {
                problems.Add($"'{shellCommandParameter}' could not be rendered: {ex.Message}");
            }
        }

        if (problems.Count > 0)
        {
            throw new ParameterValidationException(action.Ref, problems);
        }

        return result;
    }

    /// <summary>The datastore keys that rendering an action's parameters may read: from the supplied values and the defaults.</summary>
    public static IEnumerable<(string Scope, string Name)> DatastoreKeys(ActionDefinition action, IEnumerable<TemplatedValue> supplied) =>
        supplied.SelectMany(v => v.Templates).Concat(action.Parameters.Values.Select(p => p.Default).SelectMany(TemplatesIn))
            .SelectMany(t => t.DatastoreKeys);

    /// <summary>The datastore keys named by the templates among literal values (an operator's <c>storm run</c>) and the defaults.</summary>
    public static IEnumerable<(string Scope, string Name)> DatastoreKeys(ActionDefinition action, JsonObject supplied) =>
        supplied.Select(p => p.Value).Concat(action.Parameters.Values.Select(p => p.Default)).SelectMany(TemplatesIn).SelectMany(t => t.DatastoreKeys);

    // Syntax errors are reported when the parameters are resolved.
    private static IEnumerable<Template> TemplatesIn(JsonNode? value) =>
        ParameterTemplate.Compile("", value, problems: null)?.Templates ?? [];

    /// <summary>The parameters in an order where each template comes after the parameters it names.</summary>
    private static List<string> DependencyOrder(Dictionary<string, ParameterTemplate> templates, IEnumerable<string> names, List<string> problems)
    {
        var all = names.ToHashSet(StringComparer.Ordinal);
        var order = new List<string>();
        var state = new Dictionary<string, int>(StringComparer.Ordinal);
        var path = new List<string>();

        void Visit(string name)
        {
            if (state.GetValueOrDefault(name) == 2)
            {
                return;
            }

            if (state.GetValueOrDefault(name) == 1)
            {
                var cycle = path.SkipWhile(p => p != name).Append(name);
                problems.Add($"parameters depend on each other in a cycle: {string.Join(" -> ", cycle)}");
                throw new InvalidOperationException("cycle");
            }

            state[name] = 1;
            path.Add(name);
            if (templates.TryGetValue(name, out var template))
            {
                foreach (var dependency in template.ReferencedNames.Where(all.Contains).Where(d => d != name).Order(StringComparer.Ordinal))
                {
                    Visit(dependency);
                }
            }

            path.RemoveAt(path.Count - 1);
            state[name] = 2;
            order.Add(name);
        }

        try
        {
            foreach (var name in all.Order(StringComparer.Ordinal))
            {
                Visit(name);
            }
        }
        catch (InvalidOperationException)
        {
            return [.. all.Where(n => !templates.ContainsKey(n))];
        }

        return order;
    }

    /// <summary>
    /// Checks and casts, once opened, the parameters that were still sealed when they were resolved (a datastore
    /// secret's reference, a secret a workflow passed on): as StackStorm casts a rendered value to its parameter's
    /// type, an integer parameter whose secret opens to <c>"42"</c> gets 42, and to <c>"abc"</c> is refused. The
    /// problems never repeat the opened value.
    /// </summary>
    /// <param name="resolved">The parameters as resolved (references still in them).</param>
    /// <param name="opened">The same parameters with the references opened.</param>
    public static JsonObject CheckOpened(ActionDefinition action, JsonObject resolved, JsonObject opened)
    {
        var problems = new List<string>();
        var result = (JsonObject)opened.DeepClone();
        foreach (var (name, value) in resolved)
        {
            if (IsSealed(value) && action.Parameters.TryGetValue(name, out var definition) && opened[name] is { } plain)
            {
                result[name] = Cast(definition, plain.DeepClone(), problems, hideValue: true);
            }
        }

        return problems.Count > 0 ? throw new ParameterValidationException(action.Ref, problems) : result;
    }

    // A datastore secret is still its reference until the runner, and a secret a workflow passes on (an inquiry's
    // secret answer) still sealed.
    private static bool IsSealed(JsonNode? value) => value is JsonValue rendered && rendered.TryGetValue<string>(out var text)
        && (text.Contains(Datastore.KeyValueService.ReferencePrefix, StringComparison.Ordinal)
            || text.StartsWith(Datastore.KeyValueService.SealedValuePrefix, StringComparison.Ordinal) && text.EndsWith('\u27e7'));

    private static JsonNode? Cast(ParameterDefinition definition, JsonNode? value, List<string> problems, bool hideValue = false)
    {
        if (value is null)
        {
            return null;
        }

        // Its type and value are checked when the runner opens it (CheckOpened).
        if (!hideValue && IsSealed(value))
        {
            return value;
        }

        var secret = definition.Secret || hideValue;
        var types = definition.Type.Split('|');
        var cast = types.Contains(TypeOf(value)) ? value : types.Select(t => CastTo(t, value)).FirstOrDefault(v => v is not null);
        if (cast is null)
        {
            problems.Add($"'{definition.Name}' must be {string.Join(" or ", types.Select(Article))}, got {(secret ? Kind(value) : Describe(value))}{(hideValue ? " (a secret, not shown)" : "")}");
            return null;
        }

        if (definition.Enum is { Count: > 0 } allowed && !allowed.Any(a => JsonNode.DeepEquals(a, cast)))
        {
            problems.Add($"'{definition.Name}' must be one of {allowed.ToJsonString()}, got {(secret ? "another value" : cast.ToJsonString())}");
        }

        if (definition.Schema is { } schema)
        {
            // A secret's value is not repeated in the problem (it would reach the audit and the logs).
            problems.AddRange(JsonSchema.Validate(cast, schema).Select(problem => secret
                ? $"'{definition.Name}' does not meet its schema ({string.Join(", ", schema.Select(k => k.Key))})"
                : $"'{definition.Name}': {problem}").Distinct());
        }

        return cast;
    }

    private static string Kind(JsonNode value) => value.GetValueKind() switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => "null",
    };

    private static string TypeOf(JsonNode value) => value.GetValueKind() switch
    {
        JsonValueKind.String => "string",
        JsonValueKind.Number when JsonNumbers.TryGetInt64(value, out _) => "integer",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Array => "array",
        JsonValueKind.Object => "object",
        _ => "null",
    };

    private static JsonNode? CastTo(string type, JsonNode value)
    {
        var kind = value.GetValueKind();
        var text = kind == JsonValueKind.String ? value.GetValue<string>() : null;
        return type switch
        {
            "string" when kind is not (JsonValueKind.Object or JsonValueKind.Array) => JsonValue.Create(Py.Str(Py.FromJson(value))),
            "integer" when text is not null && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
            "number" when text is not null && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
            "boolean" when text is not null && bool.TryParse(text, out var b) => b,
            "array" or "object" when text is not null && TryParseJson(text) is { } parsed && parsed.GetValueKind() == (type == "array" ? JsonValueKind.Array : JsonValueKind.Object) => parsed,
            "number" when kind == JsonValueKind.Number => value,
            _ => null,
        };
    }

    private static JsonNode? TryParseJson(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Article(string type) => type is "integer" or "array" or "object" ? $"an {type}" : $"a {type}";

    private static string Describe(JsonNode value) => value.GetValueKind() switch
    {
        JsonValueKind.String => $"the string {value.ToJsonString()}",
        JsonValueKind.Number => $"the number {value.ToJsonString()}",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {value.ToJsonString()}",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => value.ToJsonString(),
    };
}
