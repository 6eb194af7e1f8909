using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;

namespace ServerlessStorm.Engine.Tests;

public class TemplateTests
{
    private static readonly TemplateScope Scope = TemplateScope.ForTrigger(JsonNode.Parse("""
        {"body": {"name": "storm", "count": 3, "tags": ["a", "b"], "ok": true, "none": null, "nested": {"k": 1}},
         "headers": {"X-GitHub-Event": "push", "a.b": "dotted"}}
        """));

    [Theory]
    [InlineData("Hello {{ trigger.body.name }}", "Hello storm")]
    [InlineData("{{trigger.body.tags[1]}}", "b")]
    [InlineData("{{ trigger.body.tags[-1] }}", "b")]
    [InlineData("{{ trigger.headers['X-GitHub-Event'] }}", "push")]
    [InlineData("{{ trigger.headers[\"a.b\"] }}", "dotted")]
    [InlineData("[{{ trigger.body.missing }}]", "[]")]
    [InlineData("{{ trigger.body.ok }}/{{ trigger.body.none }}", "True/None")]
    [InlineData("n={{ trigger.body.nested }}", "n={\"k\":1}")]
    [InlineData("no template", "no template")]
    public void Render_ProducesJinjaText(string template, string expected) =>
        Assert.Equal(expected, Template.Parse(template).Render(Scope));

    [Fact]
    public void Evaluate_SingleExpression_KeepsTheJsonType()
    {
        Assert.Equal(3, Template.Parse("{{ trigger.body.count }}").Evaluate(Scope)!.GetValue<long>());
        Assert.IsType<JsonArray>(Template.Parse("{{ trigger.body.tags }}").Evaluate(Scope));
        Assert.Equal("3 items", Template.Parse("{{ trigger.body.count }} items").Evaluate(Scope)!.GetValue<string>());
    }

    [Theory]
    [InlineData("{{ 7*7 }}")]
    [InlineData("{% for x in y %}boom{% endfor %}")]
    [InlineData("<% ctx().secret %>")]
    [InlineData("{{ trigger.__class__.__mro__ }}")]
    [InlineData("{{ ''.GetType().Assembly }}")]
    public void PayloadHoldingTemplateSyntax_IsInsertedAsDataAndNeverEvaluated(string hostile)
    {
        var scope = TemplateScope.ForTrigger(new JsonObject { ["body"] = new JsonObject { ["name"] = hostile } });

        Assert.Equal($"Hello {hostile}!", Template.Parse("Hello {{ trigger.body.name }}!").Render(scope));
    }

    [Theory]
    [InlineData("{{ trigger.body.name", "never closed")]
    [InlineData("{{ trigger.body.name + 1 }}", "unexpected '+'")]
    [InlineData("{{ }}", "expected a name")]
    [InlineData("{{ trigger[ }}", "inside '[ ]'")]
    public void Parse_Error_NamesThePosition(string template, string message)
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse(template));
        Assert.Contains(message, error.Message);
        Assert.InRange(error.Offset, 0, template.Length);
    }

    [Fact]
    public void TemplatedValue_RendersNestedStructures()
    {
        var value = TemplatedValue.Compile(JsonNode.Parse("""{"text": "hi {{ trigger.body.name }}", "n": "{{ trigger.body.count }}", "list": ["{{ trigger.body.ok }}", 2]}"""));

        var rendered = value.Render(Scope);

        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""{"text": "hi storm", "n": 3, "list": [true, 2]}"""), rendered));
    }
}
