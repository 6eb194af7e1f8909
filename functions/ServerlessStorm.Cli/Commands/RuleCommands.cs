using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;

namespace ServerlessStorm.Cli.Commands;

internal static class RuleCommands
{
    public static Command Create()
    {
        var rule = new Option<string>("--rule") { Description = "The rule's YAML file", Required = true };
        var instance = new Option<string>("--trigger-instance")
        {
            Description = "A JSON file {\"trigger\": \"<type ref>\", \"payload\": {…}} (st2-rule-tester's format)",
            Required = true,
        };
        var test = new Command("test", "Test whether a rule matches a trigger instance: exit 0 when it matches, 1 when it does not, 2 on invalid input")
        {
            rule, instance,
        };
        test.SetAction(result => Test(result.GetValue(rule)!, result.GetValue(instance)!));
        return new Command("rule", "Work with rules") { test };
    }

    private static int Test(string rulePath, string instancePath)
    {
        var (rule, problems) = new PackLoader(PackCommands.KnownRunnerTypes()).LoadRule(rulePath);
        if (rule is null || problems.Count > 0)
        {
            Console.Error.WriteLine($"error: the rule file is invalid:");
            foreach (var problem in problems)
            {
                Console.Error.WriteLine($"  {problem}");
            }

            return CliOutput.InvalidInput;
        }

        if (ReadTriggerInstance(instancePath, out var error) is not var (triggerType, payload))
        {
            return CliOutput.Error(error!);
        }

        if (triggerType != rule.TriggerType)
        {
            Console.WriteLine($"Rule {rule.Ref} does NOT match: it listens to trigger '{rule.TriggerType}', the instance is of '{triggerType}'.");
            return CliOutput.Failed;
        }

        var match = new RuleMatcher(NullLogger<RuleMatcher>.Instance).Match(rule, payload);
        if (!match.IsMatch)
        {
            Console.WriteLine($"Rule {rule.Ref} does NOT match: {match.Reason}.");
            return CliOutput.Failed;
        }

        var scope = TemplateScope.ForTrigger(payload);
        var parameters = new JsonObject();
        foreach (var (name, value) in rule.ActionParameters)
        {
            parameters[name] = value.AsTemplate is { } template ? template.Render(scope) : value.Render(scope);
        }

        Console.WriteLine($"Rule {rule.Ref} matches. It would run {rule.ActionRef} with:");
        Console.WriteLine(CliOutput.Json(parameters));
        return CliOutput.Ok;
    }

    private static (string TriggerType, JsonNode? Payload)? ReadTriggerInstance(string path, out string? error)
    {
        error = null;
        JsonNode? document;
        try
        {
            document = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error = $"cannot read the trigger instance file '{path}': {ex.Message}";
            return null;
        }
        catch (JsonException ex)
        {
            error = $"the trigger instance file '{path}' is not valid JSON: {ex.Message}";
            return null;
        }

        var trigger = document?["trigger"] switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonObject o when o["type"] is JsonValue t && t.TryGetValue<string>(out var s) => s,
            _ => null,
        };
        if (document is not JsonObject || trigger is null)
        {
            error = $"the trigger instance file '{path}' must be a JSON object with \"trigger\" (the trigger type ref) and \"payload\"";
            return null;
        }

        return (trigger, document["payload"]);
    }
}
