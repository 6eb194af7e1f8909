using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Engine.Workflows;

/// <summary>
/// Reads an Orquesta workflow file and checks it as <c>storm workflow inspect</c> does, reporting every problem at
/// once with its line: fields and shapes, expressions that do not parse, <c>do</c> naming an unknown task, unknown
/// actions, tasks no path reaches, and joins that can never be satisfied.
/// </summary>
public static partial class WorkflowLoader
{
    private static readonly string[] TopFields = ["version", "description", "input", "vars", "output", "tasks"];
    private static readonly string[] TaskFields = ["action", "input", "next", "join", "with", "retry", "delay"];

    /// <param name="path">The file to read.</param>
    /// <param name="displayPath">How problems name the file.</param>
    /// <param name="actionExists">Whether an action ref is known; null skips that check.</param>
    public static (WorkflowDefinition? Definition, IReadOnlyList<PackProblem> Problems) Load(string path, string displayPath, Func<string, bool>? actionExists = null)
    {
        try
        {
            return LoadText(File.ReadAllText(path), displayPath, actionExists);
        }
        catch (IOException ex)
        {
            return (null, [new PackProblem(displayPath, SourcePosition.Unknown, null, $"cannot read the file: {ex.Message}")]);
        }
    }

    /// <summary>Reads a workflow from its text (an orchestrator does this on every replay: it is pure).</summary>
    public static (WorkflowDefinition? Definition, IReadOnlyList<PackProblem> Problems) LoadText(string text, string displayPath, Func<string, bool>? actionExists = null)
    {
        var problems = new List<PackProblem>();
        void Problem(SourcePosition at, string? field, string message) => problems.Add(new PackProblem(displayPath, at, field, message));
        var path = displayPath;

        YamlMapping doc;
        try
        {
            if (BoundedYamlReader.Read(text) is not YamlMapping mapping)
            {
                Problem(new SourcePosition(1, 1), null, "a workflow file is a YAML mapping with version and tasks");
                return (null, problems);
            }

            doc = mapping;
        }
        catch (YamlReadException ex)
        {
            Problem(ex.Position, null, $"YAML error: {ex.Message}");
            return (null, problems);
        }

        foreach (var (key, _) in doc.Entries.Where(e => !TopFields.Contains(e.Key.Value)))
        {
            Problem(key.Position, key.Value, $"unknown field for a workflow (known: {string.Join(", ", TopFields)})");
        }

        if (doc["version"] is not YamlScalar { Value: "1.0" or "1" })
        {
            Problem(doc["version"]?.Position ?? doc.Position, "version", "must be 1.0 (Orquesta)");
        }

        TemplatedValue Compile(YamlNode? node, string field) =>
            TemplatedValue.Compile(node?.ToJson(), (at, ex) => Problem(node?.Position ?? doc.Position, Join(field, at), $"expression does not parse: {ex.Message}"), TemplateDialect.Orquesta);

        // delay, retry count and delay, concurrency: Orquesta takes a whole number (0 or more) or an expression.
        TemplatedValue? WholeNumber(YamlNode? node, string field)
        {
            if (node is null)
            {
                return null;
            }

            var value = node.ToJson();
            var ok = value is JsonValue v && (v.GetValueKind() == System.Text.Json.JsonValueKind.Number
                ? Json.JsonNumbers.TryGetInt64(v, out var n) && n >= 0
                : v.TryGetValue<string>(out var text) && Template.LooksLikeTemplate(text, TemplateDialect.Orquesta));
            if (!ok)
            {
                Problem(node.Position, field, $"must be a whole number (0 or more) or an expression, got {value?.ToJsonString() ?? "nothing"}");
            }

            return Compile(node, field);
        }

        Template? Expression(YamlNode? node, string field)
        {
            if (node is null)
            {
                return null;
            }

            if (node is not YamlScalar scalar)
            {
                Problem(node.Position, field, "expected an expression");
                return null;
            }

            try
            {
                return Template.Parse(scalar.Value, TemplateDialect.Orquesta);
            }
            catch (TemplateSyntaxException ex)
            {
                Problem(node.Position, field, $"expression does not parse: {ex.Message}");
                return null;
            }
        }

        // vars, publish and output: a list of one-key mappings (Orquesta's form), or one mapping; publish also takes
        // Orquesta's inline string, "a=<% result() %> b=<% ctx(x) %>".
        List<NamedExpression> Named(YamlNode? node, string field, bool inline = false)
        {
            if (inline && node is YamlScalar text)
            {
                return [.. Inline(text, field, "publish").Select(p => new NamedExpression(p.Name,
                    TemplatedValue.Compile(p.Value, (at, ex) => Problem(text.Position, Join($"{field}.{p.Name}", at), $"expression does not parse: {ex.Message}"), TemplateDialect.Orquesta)))];
            }

            var entries = node switch
            {
                null => [],
                YamlMapping map => map.Entries.ToList(),
                YamlSequence list => [.. list.Items.SelectMany(i => i is YamlMapping { Entries.Count: 1 } m ? m.Entries : Bad(i))],
                _ => Bad(node),
            };
            return [.. entries.Select(e => new NamedExpression(e.Key.Value, Compile(e.Value, $"{field}.{e.Key.Value}")))];

            List<KeyValuePair<YamlScalar, YamlNode>> Bad(YamlNode bad)
            {
                Problem(bad.Position, field, "expected a list of 'name: value' entries");
                return [];
            }
        }

        // key=value pairs of an inline form; what Orquesta would silently drop is reported.
        IReadOnlyList<InlineParameter> Inline(YamlScalar text, string field, string what)
        {
            var (parameters, unread) = InlineParameters.Parse(text.Value);
            foreach (var bad in unread)
            {
                Problem(text.Position, field, $"'{bad}' is not a key=value pair of {what} (a value is a \"quoted\" or 'quoted' string, a number, "
                    + "true, false, null, a [list], a '{...}' JSON object in quotes, or a <% %> or {{ }} expression)");
            }

            if (parameters.Count == 0 && unread.Count == 0)
            {
                Problem(text.Position, field, $"{what} is empty");
            }

            return parameters;
        }

        var inputs = new List<WorkflowInput>();
        foreach (var item in (doc["input"] as YamlSequence)?.Items ?? [])
        {
            switch (item)
            {
                case YamlScalar name:
                    inputs.Add(new WorkflowInput(name.Value, null, false));
                    break;
                case YamlMapping { Entries.Count: 1 } withDefault:
                    inputs.Add(new WorkflowInput(withDefault.Entries[0].Key.Value, withDefault.Entries[0].Value.ToJson(), true)
                    {
                        DefaultValue = Compile(withDefault.Entries[0].Value, $"input.{withDefault.Entries[0].Key.Value}"),
                    });
                    break;
                default:
                    Problem(item.Position, "input", "each input is a name, or 'name: default'");
                    break;
            }
        }

        if (doc["input"] is { } badInput and not YamlSequence)
        {
            // Orquesta's schema takes only the list here (no key=value string).
            Problem(badInput.Position, "input", "expected a list of names (or 'name: default')");
        }

        // The action ref and its input: Orquesta's "core.echo message=<% ctx(x) %> count=3" gives both, its pairs
        // replacing any input: (as Orquesta does); input: itself is a mapping, or one expression giving the mapping.
        (string? Action, TemplatedValue Input) ActionAndInput(YamlMapping task, string field)
        {
            var given = task["input"];
            if (given is YamlScalar inputText && given.ToJson() is JsonValue)
            {
                if (InlineParameters.HasAny(inputText.Value))
                {
                    Problem(given.Position, $"{field}.input", "Orquesta reads key=value pairs after the action ref (action: core.echo message=\"hi\"), not in input: "
                        + "write input as a mapping, or as one expression giving the mapping");
                }
                else if (!Template.LooksLikeTemplate(inputText.Value, TemplateDialect.Orquesta))
                {
                    Problem(given.Position, $"{field}.input", "expected a mapping of parameters, or one expression giving the mapping");
                }
            }
            else if (given is not null and not YamlMapping)
            {
                Problem(given.Position, $"{field}.input", "expected a mapping of parameters, or one expression giving the mapping");
            }

            var input = Compile(given, $"{field}.input");
            if (task["action"] is not YamlScalar actionText)
            {
                if (task["action"] is { } badAction)
                {
                    Problem(badAction.Position, $"{field}.action", "expected an action ref, with key=value parameters after it if any");
                }

                return (null, input);
            }

            var text = actionText.Value.Trim();
            var space = text.IndexOf(' ', StringComparison.Ordinal);
            if (space < 0 || Template.LooksLikeTemplate(text, TemplateDialect.Orquesta) && !InlineParameters.HasAny(text))
            {
                return (text.Length == 0 ? null : text, input);
            }

            var reference = text[..space];
            if (Template.LooksLikeTemplate(reference, TemplateDialect.Orquesta) || reference.Contains("<%", StringComparison.Ordinal) || reference.Contains("{{", StringComparison.Ordinal))
            {
                Problem(actionText.Position, $"{field}.action", "an action named by an expression takes its parameters in input:, not after it (Orquesta splits the ref at the first space)");
                return (text, input);
            }

            var parameters = Inline(new YamlScalar(actionText.Position, text[(space + 1)..], actionText.IsPlain, actionText.Tag), $"{field}.action", $"action {reference}'s parameters");
            var inline = new JsonObject();
            foreach (var parameter in parameters)
            {
                inline[parameter.Name] = parameter.Value; // as Orquesta (a dict): a name given twice keeps its last value
            }

            return (reference, TemplatedValue.Compile(inline, (at, ex) => Problem(actionText.Position, Join($"{field}.action", at), $"expression does not parse: {ex.Message}"),
                TemplateDialect.Orquesta));
        }

        var vars = Named(doc["vars"], "vars");
        var output = Named(doc["output"], "output");
        var tasks = new Dictionary<string, WorkflowTask>(StringComparer.Ordinal);
        var order = new List<string>();
        if (doc["tasks"] is not YamlMapping taskMap || taskMap.Entries.Count == 0)
        {
            Problem(doc["tasks"]?.Position ?? doc.Position, "tasks", "a workflow needs at least one task");
            return (null, problems);
        }

        foreach (var (nameNode, body) in taskMap.Entries)
        {
            var name = nameNode.Value;
            var field = $"tasks.{name}";
            if (WorkflowDefinition.EngineCommands.Contains(name))
            {
                Problem(nameNode.Position, field, $"'{name}' is an engine command, reserved: a task cannot take its name (as in Orquesta)");
            }

            if (body is not YamlMapping task)
            {
                Problem(body.Position, field, "a task is a mapping (action, input, next, …)");
                continue;
            }

            foreach (var (key, _) in task.Entries.Where(e => !TaskFields.Contains(e.Key.Value)))
            {
                Problem(key.Position, $"{field}.{key.Value}", $"unknown field for a task (known: {string.Join(", ", TaskFields)})");
            }

            var (action, input) = ActionAndInput(task, field);
            if (action is not null && actionExists is not null && !Template.LooksLikeTemplate(action, TemplateDialect.Orquesta) && !actionExists(action))
            {
                Problem(task["action"]!.Position, $"{field}.action", $"action '{action}' does not exist");
            }

            var next = new List<WorkflowTransition>();
            foreach (var (entry, i) in ((task["next"] as YamlSequence)?.Items ?? []).Select((e, i) => (e, i)))
            {
                var at = $"{field}.next[{i}]";
                if (entry is not YamlMapping transition)
                {
                    Problem(entry.Position, at, "a transition is a mapping (when, publish, do)");
                    continue;
                }

                var targets = transition["do"] switch
                {
                    null => [],
                    YamlScalar s => s.Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToList(),
                    YamlSequence list => list.Items.OfType<YamlScalar>().Select(s => s.Value).ToList(),
                    _ => [],
                };
                next.Add(new WorkflowTransition(Expression(transition["when"], $"{at}.when"), Named(transition["publish"], $"{at}.publish", inline: true), targets, transition.Position));
            }

            if (task["next"] is { } badNext and not YamlSequence)
            {
                Problem(badNext.Position, $"{field}.next", "expected a list of transitions");
            }

            WorkflowJoin? join = task["join"] switch
            {
                null => null,
                YamlScalar { Value: "all" } => new WorkflowJoin(null),
                YamlScalar s when int.TryParse(s.Value, out var n) && n > 0 => new WorkflowJoin(n),
                var bad => BadJoin(bad),
            };

            WorkflowJoin? BadJoin(YamlNode bad)
            {
                Problem(bad.Position, $"{field}.join", "expected 'all' or a number of inbound tasks");
                return null;
            }

            WithItems? with = null;
            if (task["with"] is { } withNode)
            {
                var (items, concurrency) = withNode is YamlMapping w ? (w["items"], w["concurrency"]) : (withNode, null);
                if (items is YamlScalar itemsText && ItemsForm().Match(itemsText.Value) is { Success: true } m)
                {
                    var variables = m.Groups["vars"].Success ? m.Groups["vars"].Value.Split(',', StringSplitOptions.TrimEntries).ToList() : [];
                    var expression = Expression(new YamlScalar(itemsText.Position, m.Groups["expr"].Value, false, null), $"{field}.with.items");
                    if (expression is not null)
                    {
                        with = new WithItems(variables, expression, WholeNumber(concurrency, $"{field}.with.concurrency"));
                    }
                }
                else
                {
                    Problem(withNode.Position, $"{field}.with", "items must be an expression, or 'x in <expression>'");
                }
            }

            RetrySpec? retry = null;
            if (task["retry"] is YamlMapping r)
            {
                retry = new RetrySpec(Expression(r["when"], $"{field}.retry.when"), WholeNumber(r["count"], $"{field}.retry.count") ?? Compile(new YamlScalar(r.Position, "0", true, null), $"{field}.retry.count"),
                    WholeNumber(r["delay"], $"{field}.retry.delay"));
                if (r["count"] is null)
                {
                    Problem(r.Position, $"{field}.retry.count", "is required");
                }
            }

            tasks[name] = new WorkflowTask(name, action, input, next, join, with, retry,
                WholeNumber(task["delay"], $"{field}.delay"), nameNode.Position);
            order.Add(name);
        }

        var definition = new WorkflowDefinition(path, inputs, vars, output, tasks, order);
        Inspect(definition, Problem);
        return (definition, problems);
    }

    private static void Inspect(WorkflowDefinition workflow, Action<SourcePosition, string?, string> problem)
    {
        foreach (var task in workflow.Tasks.Values)
        {
            foreach (var (transition, i) in task.Next.Select((t, i) => (t, i)))
            {
                foreach (var target in transition.Do.Where(d => !workflow.Tasks.ContainsKey(d) && !WorkflowDefinition.EngineCommands.Contains(d)))
                {
                    problem(transition.Position, $"tasks.{task.Name}.next[{i}].do",
                        $"'{target}' is neither a task nor an engine command (tasks: {string.Join(", ", workflow.TaskOrder)}; commands: continue, fail, noop, retry)");
                }
            }

            if (task.Join is { } join)
            {
                var inbound = workflow.InboundOf(task.Name).Count;
                if (inbound == 0 || join.Count > inbound)
                {
                    problem(task.Position, $"tasks.{task.Name}.join",
                        $"can never be satisfied: it waits for {(join.Count?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "all")} inbound task(s) and {inbound} lead to it");
                }
            }
        }

        if (workflow.StartTasks.Count == 0)
        {
            problem(SourcePosition.Unknown, "tasks", "no task to start from: every task is the target of a transition");
        }

        var reached = new HashSet<string>(workflow.StartTasks, StringComparer.Ordinal);
        var queue = new Queue<string>(workflow.StartTasks);
        while (queue.TryDequeue(out var name))
        {
            foreach (var target in workflow.Tasks[name].Next.SelectMany(n => n.Do).Where(workflow.Tasks.ContainsKey))
            {
                if (reached.Add(target))
                {
                    queue.Enqueue(target);
                }
            }
        }

        foreach (var unreachable in workflow.TaskOrder.Where(t => !reached.Contains(t)))
        {
            problem(workflow.Tasks[unreachable].Position, $"tasks.{unreachable}", "is unreachable: no path from a starting task leads to it");
        }
    }

    private static string Join(string field, string at) => at.Length == 0 ? field : $"{field}.{at}";

    // "x in <% … %>", "x, y in {{ … }}", or the expression alone.
    [GeneratedRegex(@"^\s*(?:(?<vars>[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s+in\s+)?(?<expr>(?:<%|\{\{).*(?:%>|\}\}))\s*$", RegexOptions.Singleline)]
    private static partial Regex ItemsForm();
}
