using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Cli.Commands;

internal static class RuleCommands
{
    public static Command Create()
    {
        var rule = new Option<string>("--rule") { Description = "The rule's YAML file", Required = true };
        var instance = new Option<string?>("--trigger-instance")
        {
            Description = "A JSON file {\"trigger\": \"<type ref>\", \"payload\": {…}} (st2-rule-tester's format)",
        };
        var instances = new Option<string?>("--trigger-instances")
        {
            Description = "A JSON Lines file of trigger instances in the same format, one per line; one result line each",
        };
        var packs = new Option<string?>("--packs")
        {
            Description = "The packs folder with the rule's action, to show the parameters as the action gets them (default: the folder holding the rule's pack)",
        };
        var test = new Command("test", "Test whether a rule matches trigger instances: exit 0 when it matches (all of them), 1 when it does not, 2 on invalid input")
        {
            rule, instance, instances, packs,
        };
        test.SetAction(result =>
        {
            var (one, many) = (result.GetValue(instance), result.GetValue(instances));
            if ((one is null) == (many is null))
            {
                return CliOutput.Error("give either --trigger-instance FILE or --trigger-instances FILE.jsonl");
            }

            if (LoadRule(result.GetValue(rule)!) is not { } loaded)
            {
                return CliOutput.InvalidInput;
            }

            return one is not null ? TestOne(loaded, one, FindAction(loaded, result.GetValue(rule)!, result.GetValue(packs))) : TestMany(loaded, many!);
        });
        return new Command("rule", "Work with rules") { test };
    }

    private static RuleDefinition? LoadRule(string path)
    {
        var (rule, problems) = new PackLoader(PackCommands.Runners()).LoadRule(path);
        if (rule is not null && problems.Count == 0)
        {
            return rule;
        }

        Console.Error.WriteLine("error: the rule file is invalid:");
        foreach (var problem in problems)
        {
            Console.Error.WriteLine($"  {problem}");
        }

        return null;
    }

    /// <summary>The rule's action and its runner's shell parameter, from the packs folder; null (said on stderr) when it is not there.</summary>
    private static (ActionDefinition Action, string? ShellParameter, JsonObject Context)? FindAction(RuleDefinition rule, string rulePath, string? packsPath)
    {
        // packs/<pack>/rules/<rule>.yaml: the packs folder is three levels up.
        packsPath ??= Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(rulePath))));
        if (packsPath is null || !Directory.Exists(packsPath))
        {
            Console.Error.WriteLine($"note: no packs folder found for {rule.ActionRef}; give --packs DIR to see the parameters as the action gets them");
            return null;
        }

        var runners = PackCommands.Runners();
        PackLoadResult loaded;
        try
        {
            loaded = new PackLoader(runners).LoadFrom(packsPath);
        }
        catch (DirectoryNotFoundException)
        {
            loaded = new PackLoadResult(PackCatalog.Empty, []);
        }

        if (!loaded.Catalog.Actions.TryGetValue(rule.ActionRef, out var action))
        {
            Console.Error.WriteLine($"note: action {rule.ActionRef} is not in {packsPath}; give --packs DIR to see the parameters as the action gets them "
                + "(shown meanwhile as the rule renders them, without the action's defaults, types or its runner's quoting)");
            return null;
        }

        // As rule enforcement: the action runs as the system user.
        return (action, runners.TryGet(action.RunnerType, out var runner) ? runner.ShellCommandParameter : null,
            ParameterResolver.Context(loaded.Catalog, action, new AuthOptions().SystemUser));
    }

    private static int TestOne(RuleDefinition rule, string path, (ActionDefinition Action, string? ShellParameter, JsonObject Context)? target)
    {
        JsonNode? document;
        try
        {
            document = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return CliOutput.Error($"cannot read the trigger instance file '{path}': {ex.Message}");
        }
        catch (JsonException ex)
        {
            return CliOutput.Error($"the trigger instance file '{path}' is not valid JSON: {ex.Message}");
        }

        if (ReadTriggerInstance(document, out var error) is not var (triggerType, payload))
        {
            return CliOutput.Error($"{path}: {error}");
        }

        var (matched, reason) = Evaluate(rule, triggerType, payload);
        if (!matched)
        {
            Console.WriteLine($"Rule {rule.Ref} does NOT match: {reason}.");
            return CliOutput.Failed;
        }

        if (target is not var (action, shellParameter, context))
        {
            Console.WriteLine($"Rule {rule.Ref} matches. It would run {rule.ActionRef} with:");
            Console.WriteLine(CliOutput.Json(RenderParameters(rule, payload)));
            return CliOutput.Ok;
        }

        // The very rendering rule enforcement does; the datastore is not read here, its values are shown as the keys.
        JsonObject parameters;
        try
        {
            parameters = ParameterResolver.ForRule(action, rule, payload, shellParameter, new KeyValuePlaceholders(), context);
        }
        catch (Exception ex) when (ex is ParameterValidationException or ExpressionEvaluationException or ExpressionLimitException)
        {
            Console.WriteLine($"Rule {rule.Ref} matches, but it could not be enforced: {ex.Message}");
            return CliOutput.Failed;
        }

        parameters = KeyValuePlaceholders.Show(SecretMasker.MaskParameters(action, parameters));
        Console.WriteLine($"Rule {rule.Ref} matches. It would run {rule.ActionRef} with:");
        Console.WriteLine(CliOutput.Json(parameters));
        if (shellParameter is not null && parameters[shellParameter] is JsonValue command && command.TryGetValue<string>(out var script))
        {
            var variables = (parameters["env"] as JsonObject ?? []).Where(p => p.Key.StartsWith(ShellCommandTemplate.VariablePrefix, StringComparison.Ordinal)).ToList();
            Console.WriteLine($"The command runs as: /bin/sh -c {ShellQuote(script)}");
            foreach (var (name, value) in variables)
            {
                Console.WriteLine($"  with {name}={ShellQuote(value is JsonValue v && v.TryGetValue<string>(out var text) ? text : value?.ToJsonString() ?? "")}");
            }

            if (variables.Count > 0)
            {
                Console.WriteLine("  (each template value reaches the shell as a quoted variable, never as shell text)");
            }
        }

        return CliOutput.Ok;
    }

    private static string ShellQuote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>
    /// Stands in for the datastore, which <c>storm rule test</c> does not read: every key is there, as a reference
    /// that the parameter checks let through as they let a secret's through, and that is shown as the key it names.
    /// </summary>
    private sealed class KeyValuePlaceholders : IKeyValueLookup
    {
        private const string Tag = "00000000000000000000000000000000";

        public string? Get(string scope, string name) => $"{KeyValueService.ReferencePrefix}{Tag}:{scope}:{name}\u27e7";

        public static JsonObject Show(JsonObject parameters) => (JsonObject)Show((JsonNode)parameters)!;

        private static JsonNode? Show(JsonNode? node) => node switch
        {
            JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, Show(p.Value)))),
            JsonArray array => new JsonArray([.. array.Select(Show)]),
            JsonValue v when v.TryGetValue<string>(out var text) && text.Contains(KeyValueService.ReferencePrefix, StringComparison.Ordinal) =>
                JsonValue.Create(System.Text.RegularExpressions.Regex.Replace(text, "\u27e6st2kv:0{32}:(system|user):", "\u27e6st2kv.$1.")),
            _ => node?.DeepClone(),
        };
    }

    private static int TestMany(RuleDefinition rule, string path)
    {
        IEnumerable<string> lines;
        try
        {
            lines = File.ReadLines(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return CliOutput.Error($"cannot read '{path}': {ex.Message}");
        }

        var (total, matched, invalid) = (0, 0, 0);
        var number = 0;
        foreach (var line in lines)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            total++;
            JsonNode? document = null;
            string? error = null;
            try
            {
                document = JsonNode.Parse(line);
            }
            catch (JsonException ex)
            {
                error = $"not valid JSON: {ex.Message}";
            }

            if (error is not null || ReadTriggerInstance(document, out error) is not var (triggerType, payload))
            {
                invalid++;
                Console.WriteLine($"line {number}: invalid: {error}");
                continue;
            }

            var (isMatch, reason) = Evaluate(rule, triggerType, payload);
            if (isMatch)
            {
                matched++;
                Console.WriteLine($"line {number}: matches");
            }
            else
            {
                Console.WriteLine($"line {number}: does not match: {reason}");
            }
        }

        Console.Error.WriteLine($"{matched} of {total} trigger instance(s) match {rule.Ref}{(invalid > 0 ? $"; {invalid} invalid" : "")}");
        return invalid > 0 ? CliOutput.InvalidInput : matched == total ? CliOutput.Ok : CliOutput.Failed;
    }

    private static (bool Matched, string? Reason) Evaluate(RuleDefinition rule, string triggerType, JsonNode? payload)
    {
        if (triggerType != rule.TriggerType)
        {
            return (false, $"it listens to trigger '{rule.TriggerType}', the instance is of '{triggerType}'");
        }

        var match = new RuleMatcher(NullLogger<RuleMatcher>.Instance).Match(rule, payload);
        return (match.IsMatch, match.Reason);
    }

    private static JsonObject RenderParameters(RuleDefinition rule, JsonNode? payload)
    {
        var scope = TemplateScope.ForTrigger(payload);
        var parameters = new JsonObject();
        foreach (var (name, value) in rule.ActionParameters)
        {
            try
            {
                parameters[name] = value.AsTemplate is { } template ? template.Render(scope) : value.Render(scope);
            }
            catch (Exception ex) when (ex is ExpressionEvaluationException or ExpressionLimitException)
            {
                parameters[name] = $"<cannot render: {ex.Message}>";
            }
        }

        return parameters;
    }

    private static (string TriggerType, JsonNode? Payload)? ReadTriggerInstance(JsonNode? document, out string? error)
    {
        error = null;
        var trigger = document?["trigger"] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonObject o when o["type"] is JsonValue t && t.TryGetValue<string>(out var s) => s,
            _ => null,
        };
        if (document is not JsonObject || trigger is null)
        {
            error = "a trigger instance is a JSON object with \"trigger\" (the trigger type ref) and \"payload\"";
            return null;
        }

        return (trigger, document["payload"]);
    }
}
