using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Rules;

/// <summary>
/// A criteria pattern that is a template, rendered as StackStorm renders it: the <c>{{ … }}</c> span gets
/// <c>| to_complex</c> and the output is read as JSON, so <c>"{{ trigger.count }}"</c> yields the number and
/// <c>"{{ trigger.tags }}"</c> the list; when the output is not JSON the pattern renders as plain text.
/// </summary>
internal sealed partial class CriteriaPatternTemplate
{
    private readonly Template? _complex;
    private readonly Template _plain;

    private CriteriaPatternTemplate(Template? complex, Template plain)
    {
        _complex = complex;
        _plain = plain;
    }

    /// <summary>Parses both forms; throws <see cref="TemplateSyntaxException"/> when the pattern does not parse.</summary>
    public static CriteriaPatternTemplate Parse(string pattern)
    {
        var plain = Template.Parse(pattern);
        Template? complex = null;
        if (Expression().IsMatch(pattern))
        {
            try
            {
                complex = Template.Parse(Expression().Replace(pattern, "$1$2 | to_complex$3"));
            }
            catch (TemplateSyntaxException)
            {
                // The rewrite can split an expression StackStorm's regex did not foresee; the plain form still works.
            }
        }

        return new CriteriaPatternTemplate(complex, plain);
    }

    public object? Render(TemplateScope scope)
    {
        if (_complex is not null)
        {
            var text = _complex.Render(scope);
            try
            {
                return Py.FromJson(JsonNode.Parse(text));
            }
            catch (JsonException)
            {
                // Not JSON: render the pattern as plain text below.
            }
        }

        return _plain.Render(scope);
    }

    // StackStorm's MATCH_CRITERIA: ({{)\s*(.*)\s*(}})
    [GeneratedRegex(@"({{)\s*(.*)\s*(}})")]
    private static partial Regex Expression();
}
