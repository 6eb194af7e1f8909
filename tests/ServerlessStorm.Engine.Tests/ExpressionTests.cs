using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Tests;

public class ExpressionTests
{
    private static TemplateScope Scope() => TemplateScope.ForTrigger(JsonNode.Parse("""
        {"body": {"name": "storm", "count": 3, "ratio": 0.5, "tags": ["a", "b", "c"], "ok": true, "none": null,
                  "nested": {"k": 1}, "hosts": [{"name": "web1", "up": true}, {"name": "db1", "up": false}]},
         "headers": {"X-GitHub-Event": "push", "a.b": "dotted"}}
        """));

    private static string Render(string template, TemplateScope? scope = null) => Template.Parse(template).Render(scope ?? Scope());

    private static string Orquesta(string template, TemplateScope? scope = null) => Template.Parse(template, TemplateDialect.Orquesta).Render(scope ?? Scope());

    [Theory]
    [InlineData("Hello {{ trigger.body.name }}", "Hello storm")]
    [InlineData("{{trigger.body.tags[1]}}", "b")]
    [InlineData("{{ trigger.body.tags[-1] }}", "c")]
    [InlineData("{{ trigger.body.tags.0 }}", "a")]
    [InlineData("{{ trigger.body.tags[1:] }}", "['b', 'c']")]
    [InlineData("{{ trigger.body.name[::-1] }}", "mrots")]
    [InlineData("{{ trigger.headers['X-GitHub-Event'] }}", "push")]
    [InlineData("{{ trigger.headers[\"a.b\"] }}", "dotted")]
    [InlineData("{{ trigger.body.ok }}/{{ trigger.body.none }}", "True/None")]
    [InlineData("n={{ trigger.body.nested }}", "n={'k': 1}")]
    [InlineData("{{ trigger.body.ratio }}", "0.5")]
    [InlineData("{{ 1.0 }} {{ 1e20 }} {{ 0.00001 }}", "1.0 1e+20 1e-05")]
    public void Render_AccessesDataAsJinjaPrintsIt(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }}", "7")]
    [InlineData("{{ (1 + 2) * 3 }}", "9")]
    [InlineData("{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}", "3.5 3 -4 2 1024")]
    [InlineData("{{ 'a' ~ 1 ~ none }}", "a1None")]
    [InlineData("{{ 'ab' * 3 }}", "ababab")]
    [InlineData("{{ [1, 2] + [3] }}", "[1, 2, 3]")]
    [InlineData("{{ {'a': 1, 'b': [true, none]} }}", "{'a': 1, 'b': [True, None]}")]
    [InlineData("{{ 1 < 2 and 'b' > 'a' and not false }}", "True")]
    [InlineData("{{ 1 == 1.0 }} {{ true == 1 }} {{ '1' == 1 }}", "True True False")]
    [InlineData("{{ 'tor' in trigger.body.name }} {{ 'z' not in trigger.body.tags }}", "True True")]
    [InlineData("{{ 'yes' if trigger.body.ok else 'no' }}", "yes")]
    [InlineData("{{ trigger.body.count > 2 or 1 / 0 }}", "True")]
    [InlineData("{{ trigger.body.missing is defined }} {{ trigger.body.name is string }} {{ 4 is even }} {{ 3 is divisibleby 3 }}", "False True True True")]
    [InlineData("{{ trigger.body.none is none }} {{ trigger.body.count is not none }}", "True True")]
    public void Expressions_FollowPythonAndJinja(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ trigger.body.missing | default('fallback') }}", "fallback")]
    [InlineData("{{ '' | default('empty', true) }}", "empty")]
    [InlineData("{{ trigger.body.nested | to_json_string }}", "{\"k\": 1}")]
    [InlineData("{{ {'a': 1, 'b': 2} | to_json_string }}", "{\"a\": 1,\"b\": 2}")]
    [InlineData("{{ trigger.body.tags | to_complex }}", "[\"a\", \"b\", \"c\"]")]
    [InlineData("{{ 'say \"hi\"\n' | json_escape }}", "say \\\"hi\\\"\\n")]
    [InlineData("{{ {'a': [1, 2], 'b': 'x'} | to_yaml_string }}", "a:\n- 1\n- 2\nb: x\n")]
    [InlineData("{{ '{\"x\": [1]}' | from_json_string }}", "{'x': [1]}")]
    [InlineData("{{ 'storm-42' | regex_match('storm') }} {{ 'storm-42' | regex_match('42') }}", "True False")]
    [InlineData("{{ 'storm-42' | regex_search('\\\\d+') }}", "True")]
    [InlineData("{{ 'storm-42' | regex_replace('(\\\\w+)-(\\\\d+)', '\\\\2:\\\\1') }}", "42:storm")]
    [InlineData("{{ 'a1b22c333' | regex_substring('\\\\d+', 1) }}", "22")]
    [InlineData("{{ 'Storm' | upper }} {{ 'Storm' | lower }} {{ 'storm' | capitalize }}", "STORM storm Storm")]
    [InlineData("{{ '42' | int + 1 }} {{ 'x' | int(7) }} {{ '1.5' | float }} {{ 3 | string ~ '!' }}", "43 7 1.5 3!")]
    [InlineData("{{ trigger.body.tags | length }} {{ trigger.body.tags | join('-') }}", "3 a-b-c")]
    [InlineData("{{ trigger.body.tags | first }}{{ trigger.body.tags | last }}", "ac")]
    [InlineData("{{ [3, 1, 2] | sort }} {{ [1, 1, 2] | unique }} {{ [1, 2] | sum }}", "[1, 2, 3] [1, 2] 3")]
    [InlineData("{{ '/var/log/app.log' | basename }} {{ '/var/log/app.log' | dirname }}", "app.log /var/log")]
    [InlineData("{{ 'abc' | replace('', '-') }} {{ 'a.b'.replace('.', '/') }}", "-a-b-c- a/b")]
    public void Filters_BehaveAsStackStormsDo(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{% if trigger.body.count > 5 %}big{% elif trigger.body.count > 2 %}medium{% else %}small{% endif %}", "medium")]
    [InlineData("{% for t in trigger.body.tags %}{{ loop.index }}{{ t }}{% if not loop.last %},{% endif %}{% endfor %}", "1a,2b,3c")]
    [InlineData("{% for h in trigger.body.hosts if h.up %}{{ h.name }}{% else %}none{% endfor %}", "web1")]
    [InlineData("{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}", "a=1")]
    [InlineData("{% set total = trigger.body.count * 2 %}{{ total }}", "6")]
    [InlineData("{% for i in range(3) %}{{ i }}{% endfor %}", "012")]
    [InlineData("a\n{% if true %}\nb\n{% endif %}\nc", "a\nb\nc")]
    [InlineData("  {%- if true -%}  x  {%- endif -%}  ", "x")]
    [InlineData("{# a comment #}x", "x")]
    public void Statements_RenderAsJinjaWithStackStormsBlockTrimming(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void Evaluate_SingleExpression_KeepsItsType()
    {
        Assert.Equal(3, Template.Parse("{{ trigger.body.count }}").Evaluate(Scope())!.GetValue<long>());
        Assert.IsType<JsonArray>(Template.Parse("{{ trigger.body.tags }}").Evaluate(Scope()));
        Assert.Null(Template.Parse("{{ trigger.body.none }}").Evaluate(Scope()));
        Assert.Equal("3 items", Template.Parse("{{ trigger.body.count }} items").Evaluate(Scope())!.GetValue<string>());
    }

    [Fact]
    public void Undefined_IsStrict_AsInStackStorm()
    {
        var error = Assert.Throws<ExpressionEvaluationException>(() => Render("[{{ trigger.body.missing }}]"));
        Assert.Contains("'trigger.body.missing' is undefined", error.Message);
        Assert.Throws<ExpressionEvaluationException>(() => Render("{{ trigger.body.missing.deeper }}"));
        Assert.Throws<ExpressionEvaluationException>(() => Render("{% if trigger.body.missing %}x{% endif %}"));
        Assert.Throws<ExpressionEvaluationException>(() => Render("{{ nothing }}"));
    }

    [Theory]
    [InlineData("{{ 'a' < 1 }}", "'<' not supported between instances of 'str' and 'int'")]
    [InlineData("{{ 1 + 'a' }}", "unsupported operand")]
    [InlineData("{{ 1 / 0 }}", "division by zero")]
    [InlineData("{{ 'x' | nosuchfilter }}", "unknown filter 'nosuchfilter'")]
    [InlineData("{{ ''.__class__ }}", "is undefined")]
    [InlineData("{{ 'x'.GetType() }}", "has no method 'GetType'")]
    [InlineData("{{ trigger.body.Equals(1) }}", "has no method 'Equals'")]
    [InlineData("{{ ctx() }}", "only available in workflows")]
    public void EvaluationErrors_SayWhatAndWhere(string template, string message)
    {
        var error = Assert.ThrowsAny<ExpressionEvaluationException>(() => Render(template));
        Assert.Contains(message, error.Message);
        Assert.Contains("at character", error.Message);
    }

    [Theory]
    [InlineData("{{ trigger.body.name", "never closed")]
    [InlineData("{{ trigger.body.name + }}", "expected an expression")]
    [InlineData("{{ }}", "expected an expression")]
    [InlineData("{{ trigger[ }}", "expected an expression")]
    [InlineData("{% if x %}no end", "never closed with '{% endif %}'")]
    [InlineData("{% for x %}{% endfor %}", "expected 'in'")]
    [InlineData("{% while x %}", "unknown statement 'while'")]
    [InlineData("{{ 1 2 }}", "unexpected '2'")]
    public void ParseErrors_NameThePosition(string template, string message)
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse(template));
        Assert.Contains(message, error.Message);
        Assert.InRange(error.Offset, 0, template.Length);
    }

    [Theory]
    [InlineData("{{ 7*7 }}")]
    [InlineData("{% for x in range(10**9) %}boom{% endfor %}")]
    [InlineData("<% ctx().secret %>")]
    [InlineData("{{ trigger.__class__.__mro__ }}")]
    [InlineData("{{ ''.GetType().Assembly }}")]
    [InlineData("{{ st2kv.system.admin_password }}")]
    [InlineData("${IFS}$(reboot)")]
    public void PayloadHoldingTemplateSyntax_IsInsertedAsDataAndNeverEvaluated(string hostile)
    {
        var scope = TemplateScope.ForTrigger(new JsonObject { ["body"] = new JsonObject { ["name"] = hostile } });

        Assert.Equal($"Hello {hostile}!", Render("Hello {{ trigger.body.name }}!", scope));
        Assert.Equal(hostile, Template.Parse("{{ trigger.body.name }}").Evaluate(scope)!.GetValue<string>());
        // YAQL reaches data only through the workflow functions.
        scope.Workflow = new FakeWorkflow(hostile);
        Assert.Equal($"Hello {hostile}!", Orquesta("Hello <% ctx(name) %>!", scope));
    }

    [Fact]
    public void Limits_StopRunawayTemplates()
    {
        var scope = Scope();
        scope.Limits = new ExpressionLimits(MaxOutputLength: 1000, MaxLoopIterations: 100);

        Assert.Throws<ExpressionLimitException>(() => Render("{% for i in range(1000) %}x{% endfor %}", scope));
        Assert.Throws<ExpressionLimitException>(() => Render("{{ 'x' * 5000 }}", scope));
        Assert.Throws<ExpressionLimitException>(() => Render("{% for i in range(50) %}{% for j in range(50) %}{% endfor %}{% endfor %}", scope));
        Assert.Throws<TemplateSyntaxException>(() => Template.Parse("{{ " + new string('(', 500) + "1" + new string(')', 500) + " }}"));
    }

    [Fact]
    public void Limits_TimeBudgetStopsSlowTemplates()
    {
        var scope = Scope();
        scope.Limits = new ExpressionLimits(MaxLoopIterations: int.MaxValue) { Timeout = TimeSpan.FromMilliseconds(50) };

        Assert.Throws<ExpressionLimitException>(() => Render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", scope));
    }

    [Fact]
    public void Orquesta_UsesTheSameExpressionsAndTheWorkflowFunctions()
    {
        var scope = Scope();
        scope.Workflow = new FakeWorkflow();

        Assert.Equal("storm", Orquesta("<% ctx(name) %>", scope));
        Assert.Equal("storm/storm/42/True/succeeded", Orquesta("<% ctx().name %>/<% ctx('name') %>/<% result().code %>/<% succeeded() %>/<% task_status(build) %>", scope));
        Assert.Equal("web1", Orquesta("<% item(host) %>", scope));
        Assert.Equal("<% ctx().x %>", Render("<% ctx().x %>"));
    }

    [Fact]
    public void Datastore_IsReadThroughTheLookup_AndItsKeysAreKnownBeforeRendering()
    {
        var template = Template.Parse("{{ st2kv.system.api_host }}:{{ st2kv.user.port | int }}");
        var scope = Scope();
        scope.KeyValues = new KeyValueSnapshot(new Dictionary<string, string> { ["system.api_host"] = "api.local", ["user.port"] = "8080" });

        Assert.Equal([("system", "api_host"), ("user", "port")], template.DatastoreKeys);
        Assert.Equal("api.local:8080", template.Render(scope));
    }

    [Fact]
    public void Parse_IsCached()
    {
        Assert.Same(Template.Parse("{{ trigger.cached }}"), Template.Parse("{{ trigger.cached }}"));
    }

    private sealed class FakeWorkflow(string nameValue = "storm") : IWorkflowFunctions
    {
        public object? Context(string? name) => name is null ? new OrderedDictionary<string, object?> { ["name"] = nameValue } : name == "name" ? nameValue : new Undefined(name);

        public object? Result() => new OrderedDictionary<string, object?> { ["code"] = 42L };

        public object? Item(string? name) => name == "host" ? "web1" : null;

        public bool Succeeded() => true;

        public bool Failed() => false;

        public bool Completed() => true;

        public string? TaskStatus(string taskName) => taskName == "build" ? "succeeded" : null;
    }
}
