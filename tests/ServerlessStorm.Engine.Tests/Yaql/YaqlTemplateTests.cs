using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;
using ServerlessStorm.Engine.Expressions.Yaql;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Engine.Tests.Yaql;

/// <summary>YAQL in Orquesta's <c>&lt;% %&gt;</c>: how it sits in templates, workflows and their errors.</summary>
public sealed class YaqlTemplateTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("storm-yaql-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void SingleExpression_KeepsItsType_AndTextAroundItRendersPythonsWay()
    {
        var scope = Scope();

        Assert.True(Template.Parse("<% ctx().servers.select($.name) %>", TemplateDialect.Orquesta).IsSingleExpression);
        Assert.Equal("""["web1","db1"]""", Template.Parse("<% ctx().servers.select($.name) %>", TemplateDialect.Orquesta).Evaluate(scope)!.ToJsonString());
        Assert.Equal(5L, Template.Parse("<% ctx().count %>", TemplateDialect.Orquesta).EvaluateValue(scope));
        Assert.Equal("names: ['web1', 'db1'], ok: True, none: None",
            Template.Parse("names: <% ctx().servers.select($.name) %>, ok: <% succeeded() %>, none: <% null %>", TemplateDialect.Orquesta).Render(scope));
    }

    [Theory]
    [InlineData("<% ctx().mode = 'a' %>", true)]
    [InlineData("<% ctx().count > 3 and succeeded() %>", true)]
    [InlineData("<% ctx().servers.where($.port > 100).len() = 1 %>", true)]
    [InlineData("<% dict(a => 1).a = 1 %>", true)]
    [InlineData("<% ctx().servers.any($.name.startsWith('db')) %>", true)]
    [InlineData("<% int('12') + 1 = 13 %>", true)]
    [InlineData("<% let(n => ctx().count) -> $n mod 2 = 1 %>", true)]
    [InlineData("<% not ctx().mode in ['x', 'y'] %>", true)]
    public void OrquestaExpressions_ThatTheJinjaParserRejected_Evaluate(string template, bool expected)
    {
        Assert.Equal(expected, Template.Parse(template, TemplateDialect.Orquesta).EvaluateValue(Scope()));
    }

    [Theory]
    [InlineData("<% basename('/var/log/app.log') %>", "app.log")]
    [InlineData("<% dirname('/var/log/app.log') %>", "/var/log")]
    [InlineData("<% from_json_string('{\"a\": [1, 2]}').a.len() %>", 2L)]
    [InlineData("<% json_parse('[3]')[0] %>", 3L)]
    [InlineData("<% to_json_string(dict(a => 1)) %>", "{\"a\": 1}")]
    [InlineData("<% regex_match(ctx().mode, '^[a-z]$') %>", true)]
    [InlineData("<% regex_replace('a1b2', '[0-9]', '#') %>", "a#b#")]
    [InlineData("<% regex_substring('host-42', '([0-9]+)') %>", "42")]
    [InlineData("<% from_yaml_string('a: [1]').a[0] %>", 1L)]
    [InlineData("<% jsonpath_query(dict(people => [dict(first => 'Ann'), dict(first => 'Bo')]), 'people[*].first').join(',') %>", "Ann,Bo")]
    [InlineData("<% to_human_time_from_seconds(12345) %>", "3h25m45s")]
    [InlineData("<% version_more_than('1.10.0', '1.9.0') %>", true)]
    [InlineData("<% version_bump_minor('1.2.3') %>", "1.3.0")]
    public void StackStormsOrquestaFunctions_AreCallable(string template, object expected)
    {
        Assert.Equal(expected, Template.Parse(template, TemplateDialect.Orquesta).EvaluateValue(Scope()));
    }

    [Fact]
    public void JinjaInWorkflows_StaysJinja()
    {
        var scope = Scope();
        scope.Set("who", JsonValue.Create("storm"));

        Assert.Equal("STORM 3", Template.Parse("{{ who | upper }} {{ 1 + 2 }}", TemplateDialect.Orquesta).Render(scope));
        Assert.Equal("<% ctx().x %>", Template.Parse("<% ctx().x %>").Render(scope));
    }

    [Theory]
    [InlineData("<% ctx(name) == 'a' %>", "YAQL compares with '=', not '=='", 14)]
    [InlineData("<% result().stdout | int %>", "YAQL has no filters", 19)]
    [InlineData("<% ctx().x.select($ %>", "is never closed with ')'", 11)]
    [InlineData("<% 'open %>", "never closed with '", 3)]
    [InlineData("x <% 1 +", "'<%' at character 3 is never closed with '%>'", 2)]
    [InlineData("<% len (ctx()) %>", "a call is written without a space", 7)]
    public void SyntaxErrors_NameWhatAndWhere(string template, string message, int offset)
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse(template, TemplateDialect.Orquesta));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal(offset, error.Offset);
        Assert.Contains($"character {offset + 1}", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("<% $.x %>", "'x' is not a property of a null", YaqlErrorKind.NoFunction)]
    [InlineData("<% ctx().servers.select($.name)[0] %>", "cannot be indexed; add .toList()", YaqlErrorKind.NoFunction)]
    [InlineData("<% ctx().missing %>", "key 'missing' is not in the dict", YaqlErrorKind.Runtime)]
    [InlineData("<% nosuch(1) %>", "unknown function 'nosuch'", YaqlErrorKind.NoFunction)]
    [InlineData("<% 'a' + 1 %>", "'+' does not apply to string and integer", YaqlErrorKind.NoFunction)]
    [InlineData("<% st2kv('system.nope') %>", "the datastore has no key 'system.nope'", YaqlErrorKind.Runtime)]
    public void EvaluationErrors_NameTheExpressionAndThePosition(string template, string message, YaqlErrorKind kind)
    {
        var error = Assert.Throws<ExpressionEvaluationException>(() => Template.Parse(template, TemplateDialect.Orquesta).EvaluateValue(Scope()));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.StartsWith(template + ":", error.Message, StringComparison.Ordinal);
        Assert.Contains("(at character ", error.Message, StringComparison.Ordinal);
        Assert.Equal(kind, Assert.IsType<YaqlException>(error.InnerException).Kind);
    }

    [Fact]
    public void Now_ReadsTheScopesClock_SoAnOrchestratorReplaysTheSameDecision()
    {
        var scope = Scope();
        scope.Clock = () => new DateTimeOffset(2026, 12, 3, 4, 5, 6, TimeSpan.Zero);

        Assert.Equal("2026-12-03 04:05:06+00:00", Template.Parse("<% now() %>", TemplateDialect.Orquesta).EvaluateValue(scope));
        Assert.Equal(2026L, Template.Parse("<% now().year %>", TemplateDialect.Orquesta).EvaluateValue(scope));
    }

    [Fact]
    public void Dollar_AtTheWorkflowRoot_IsNull_AsInOrquesta()
    {
        Assert.Null(Template.Parse("<% $ %>", TemplateDialect.Orquesta).EvaluateValue(Scope()));
    }

    [Fact]
    public void Datastore_LiteralKeysAreKnownBeforeEvaluating_AndDecryptAndDefaultWork()
    {
        var template = Template.Parse("<% st2kv('system.api_host') %>:<% st2kv('port', decrypt => true) %>:<% st2kv('system.x', default => 'd') %>", TemplateDialect.Orquesta);
        var scope = Scope();
        scope.KeyValues = new KeyValueSnapshot(new Dictionary<string, string> { ["system.api_host"] = "api.local", ["user.port"] = "8080" });

        Assert.Equal([("system", "api_host"), ("user", "port"), ("system", "x")], template.DatastoreKeys);
        Assert.Equal("api.local:8080:d", template.Render(scope));
    }

    [Fact]
    public void Limits_BoundWhatAnExpressionMayBuild()
    {
        var scope = Scope();
        scope.Limits = new ExpressionLimits(MaxCollectionLength: 100);

        Assert.Throws<ExpressionLimitException>(() => Template.Parse("<% range(1000) %>", TemplateDialect.Orquesta).EvaluateValue(scope));
        Assert.Throws<ExpressionLimitException>(() => Template.Parse("<% [1] * 1000 %>", TemplateDialect.Orquesta).EvaluateValue(scope));
        Assert.Throws<ExpressionLimitException>(() => Template.Parse("<% range(50).select(range(50)) %>", TemplateDialect.Orquesta).EvaluateValue(scope));
        Assert.Throws<ExpressionLimitException>(() => Template.Parse("<% range(100000).select(range(100000)) %>", TemplateDialect.Orquesta).EvaluateValue(Scope()));
        Assert.Throws<ExpressionLimitException>(() => Template.Parse("<% range(10000).select('x' * 100000) %>", TemplateDialect.Orquesta).EvaluateValue(Scope()));
        Assert.Throws<TemplateSyntaxException>(() => Template.Parse("<% " + new string('(', 500) + "1" + new string(')', 500) + " %>", TemplateDialect.Orquesta));

        // Refused before they are built, not after: each would allocate gigabytes.
        string[] huge =
        [
            "range(100000) * 100000",
            "range(100000).repeat(100000).flatten()",
            "range(100000).selectMany(range(100000))",
            "('a' * 1000000).repeat(1000).join('')",
        ];
        Assert.All(huge, e => Assert.Throws<ExpressionLimitException>(() => Template.Parse($"<% {e} %>", TemplateDialect.Orquesta).EvaluateValue(Scope())));

        // A chain as long as a big file allows would make a tree deep enough to overflow the stack when walked.
        Assert.Throws<TemplateSyntaxException>(() => Template.Parse("<% 1" + string.Concat(Enumerable.Repeat("+1", 200_000)) + " %>", TemplateDialect.Orquesta));
    }

    [Fact]
    public void Workflow_RunsYaqlInWhenPublishAndWithItems()
    {
        var path = Path.Combine(_folder, "wf.yaml");
        File.WriteAllText(path, """
            version: 1.0
            input: [servers]
            tasks:
              list:
                action: core.echo
                input: {message: "<% ctx().servers.select($.name).join(',') %>"}
                next:
                  - when: <% succeeded() and result().stdout.split(',').len() = 2 %>
                    publish:
                      - names: <% result().stdout.split(',') %>
                      - big: <% ctx().servers.where($.port >= 1000).select($.name) %>
                    do: each
              each:
                with: name in <% ctx().names %>
                action: core.echo
                input: {message: "<% item(name).toUpper() %>"}
            output:
              - big: <% ctx().big %>
            """);
        var (definition, problems) = WorkflowLoader.Load(path, "wf.yaml");
        Assert.Empty(problems);
        var interpreter = new WorkflowInterpreter(definition!);
        var servers = JsonNode.Parse("""[{"name": "web1", "port": 80}, {"name": "db1", "port": 5432}]""");

        var pending = new Queue<RunAction>(interpreter.Start(new JsonObject { ["servers"] = servers }).OfType<RunAction>());
        var messages = new List<string>();
        CompleteWorkflow? done = null;
        while (pending.TryDequeue(out var run))
        {
            var message = run.Input["message"]!.GetValue<string>();
            messages.Add(message);
            foreach (var command in interpreter.OnActionCompleted(run.Id, ExecutionStatus.Succeeded, new JsonObject { ["stdout"] = message }, null))
            {
                if (command is RunAction next)
                {
                    pending.Enqueue(next);
                }
                else
                {
                    done = (CompleteWorkflow)command;
                }
            }
        }

        Assert.Equal(["web1,db1", "WEB1", "DB1"], messages);
        Assert.Equal(ExecutionStatus.Succeeded, done!.Status);
        Assert.Equal("""{"big":["db1"]}""", done.Output!.ToJsonString());
    }

    [Fact]
    public void Loader_ReportsAYaqlSyntaxErrorWithItsField()
    {
        var path = Path.Combine(_folder, "bad.yaml");
        File.WriteAllText(path, "version: 1.0\ntasks:\n  t:\n    action: core.noop\n    next:\n      - when: <% ctx(x) == 1 %>\n");

        var (_, problems) = WorkflowLoader.Load(path, "bad.yaml");

        var problem = Assert.Single(problems);
        Assert.Contains("tasks.t.next[0].when", problem.ToString(), StringComparison.Ordinal);
        Assert.Contains("YAQL compares with '='", problem.ToString(), StringComparison.Ordinal);
    }

    private static TemplateScope Scope() => new()
    {
        Workflow = new Functions(),
        KeyValues = new KeyValueSnapshot(new Dictionary<string, string>()),
    };

    private sealed class Functions : IWorkflowFunctions
    {
        private static readonly OrderedDictionary<string, object?> Context = (OrderedDictionary<string, object?>)Py.FromJson(JsonNode.Parse("""
            {"count": 5, "mode": "a", "servers": [{"name": "web1", "port": 80}, {"name": "db1", "port": 5432}]}
            """))!;

        object? IWorkflowFunctions.Context(string? name) => name is null ? Context
            : Context.TryGetValue(name, out var value) ? value : throw new ExpressionEvaluationException($"ctx has no '{name}'", 0);

        public object? Result() => null;

        public object? Item(string? name) => null;

        public bool Succeeded() => true;

        public bool Failed() => false;

        public bool Completed() => true;

        public string? TaskStatus(string taskName) => null;
    }
}
