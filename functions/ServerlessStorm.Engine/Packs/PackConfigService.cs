using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Expressions;

namespace ServerlessStorm.Engine.Packs;

/// <summary>A pack's config could not be rendered (a template failed); the message names the pack and key, never a value.</summary>
public sealed class PackConfigException(string message) : Exception(message);

/// <summary>A pack's config as pack code sees it, and the values in it that must be masked wherever they could appear.</summary>
public sealed record ResolvedPackConfig(JsonObject Values, IReadOnlyList<string> Secrets);

/// <summary>
/// Produces a pack's config for one use — an execution, a sensor's poll — as StackStorm's config loader does each
/// time an action runs: templated values (<c>{{ st2kv.system.api_key }}</c>, <c>| decrypt_kv</c>) are rendered from
/// the datastore now, so a changed key is seen by the next execution without reloading the packs. Every runner path
/// takes its config from here: C# and Python actions (<c>RunnerContext.Config</c>), parameter templates
/// (<c>config_context</c>) and sensors.
/// </summary>
/// <remarks>
/// Secrets are kept closed until the runner needs them, as the datastore keeps them for parameters: a value under a
/// <c>secret: true</c> key and a value from an encrypted datastore key are references or sealed values in
/// <see cref="RenderAsync"/>'s result (what templates and the audit see), and only <see cref="ResolveAsync"/> opens
/// them, returning them as secrets to mask.
/// </remarks>
public sealed class PackConfigService(PackCatalog catalog, KeyValueService datastore, ILogger<PackConfigService> logger)
{
    /// <summary>
    /// The config of <paramref name="pack"/> for templates of execution <paramref name="executionId"/>
    /// (<c>config_context</c>): rendered, with every secret still closed (it opens only in that execution's runner).
    /// An unknown pack has an empty config.
    /// </summary>
    public async Task<JsonObject> RenderAsync(string pack, string executionId, string? user, CancellationToken cancellationToken)
    {
        if (catalog.Packs.GetValueOrDefault(pack) is not { } definition)
        {
            return [];
        }

        var schema = definition.ConfigSchema ?? new PackConfigSchema([]);
        var templates = new Dictionary<string, Template>(StringComparer.Ordinal);
        schema.Map(definition.Config, (value, _, path) =>
        {
            if (value is JsonValue v && v.TryGetValue<string>(out var text) && Template.LooksLikeTemplate(text))
            {
                templates[path] = Parse(definition.Name, path, text);
            }

            return value;
        });

        var scope = new TemplateScope();
        if (templates.Count > 0)
        {
            scope.KeyValues = await datastore.SnapshotAsync(templates.Values.SelectMany(t => t.DatastoreKeys), executionId, user, cancellationToken);
        }

        return schema.Map(definition.Config, (value, propertySchema, path) =>
        {
            if (templates.TryGetValue(path, out var template))
            {
                string rendered;
                try
                {
                    rendered = template.Render(scope);
                }
                catch (Exception ex) when (ex is Expressions.Runtime.ExpressionEvaluationException or Expressions.Runtime.ExpressionLimitException or Expressions.Runtime.PyTypeError or Expressions.Yaql.YaqlException)
                {
                    // The template's text is the operator's, not a secret: the rendered value is never shown.
                    logger.PackConfigRenderFailed(definition.Name, path, ex.Message);
                    throw new PackConfigException($"pack '{definition.Name}' config key '{path}': cannot render '{template.Source}': {ex.Message}");
                }

                value = JsonValue.Create(rendered);
            }

            return PackConfigSchema.IsSecret(propertySchema) && value is not null && !IsClosed(value) ? JsonValue.Create(datastore.SealValue(value)) : value?.DeepClone();
        });
    }

    /// <summary>
    /// The config of <paramref name="pack"/> as its code sees it in execution <paramref name="executionId"/> (or a
    /// sensor's poll): rendered and opened, with the opened secrets to mask.
    /// </summary>
    public async Task<ResolvedPackConfig> ResolveAsync(string pack, string executionId, string? user, CancellationToken cancellationToken)
    {
        var rendered = await RenderAsync(pack, executionId, user, cancellationToken);
        var secrets = new List<string>();
        var opened = (JsonObject)(await OpenAsync(rendered, executionId, secrets, cancellationToken))!;
        return new ResolvedPackConfig(opened, secrets);
    }

    private async Task<JsonNode?> OpenAsync(JsonNode? node, string executionId, List<string> secrets, CancellationToken cancellationToken)
    {
        switch (node)
        {
            case JsonObject obj:
                var copy = new JsonObject();
                foreach (var (key, child) in obj)
                {
                    copy[key] = await OpenAsync(child, executionId, secrets, cancellationToken);
                }

                return copy;
            case JsonArray array:
                var items = new JsonArray();
                foreach (var child in array)
                {
                    items.Add(await OpenAsync(child, executionId, secrets, cancellationToken));
                }

                return items;
            case JsonValue value when value.TryGetValue<string>(out var text) && datastore.TryUnsealValue(text, out var unsealed):
                secrets.AddRange(SecretTexts(unsealed));
                return unsealed;
            case JsonValue value when value.TryGetValue<string>(out var text) && IsClosed(value):
                var (plain, found) = await datastore.UnsealAsync(text, executionId, cancellationToken);
                secrets.AddRange(found);
                return JsonValue.Create(plain);
            default:
                return node?.DeepClone();
        }
    }

    // A secret object or list is masked by each text in it.
    private static IEnumerable<string> SecretTexts(JsonNode? node) => node switch
    {
        JsonObject obj => obj.SelectMany(p => SecretTexts(p.Value)),
        JsonArray array => array.SelectMany(SecretTexts),
        JsonValue v when v.TryGetValue<string>(out var s) => s.Length > 0 ? [s] : [],
        null => [],
        _ => [node.ToJsonString()],
    };

    private static bool IsClosed(JsonNode value) => value is JsonValue v && v.TryGetValue<string>(out var text)
        && (text.Contains(KeyValueService.ReferencePrefix, StringComparison.Ordinal) || text.Contains(KeyValueService.SealedValuePrefix, StringComparison.Ordinal));

    private static Template Parse(string pack, string path, string text)
    {
        try
        {
            return Template.Parse(text);
        }
        catch (TemplateSyntaxException ex)
        {
            // Checked when the pack loaded; a config changed since would fail here.
            throw new PackConfigException($"pack '{pack}' config key '{path}': template error at character {ex.Offset + 1}: {ex.Message}");
        }
    }
}
