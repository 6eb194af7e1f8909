using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;

namespace ServerlessStorm.Engine.Actions;

/// <summary>A shell command line whose template values travel as environment variables, not as shell text.</summary>
public sealed record RenderedShellCommand(string Script, IReadOnlyDictionary<string, string> Variables);

/// <summary>
/// Renders the <c>cmd</c> of a shell action so that data can never become shell syntax. The template's own text is
/// the script, written by the pack author and run by <c>/bin/sh -c</c> as StackStorm runs it. Each <c>{{ … }}</c>
/// becomes a reference to an environment variable (<c>STORM_ARG_1</c>, …) holding the rendered value, quoted for the
/// place it stands in, so the shell expands it as one literal word and never parses it: a payload of
/// <c>$(touch /tmp/x)</c> is printed, not run.
/// </summary>
public static class ShellCommandTemplate
{
    public const string VariablePrefix = "STORM_ARG_";

    public static RenderedShellCommand Render(Template template, TemplateScope scope)
    {
        var script = new StringBuilder();
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        var quote = Quote.None;
        foreach (var segment in template.Segments)
        {
            switch (segment)
            {
                case TextSegment text:
                    quote = Track(text.Text, quote);
                    script.Append(text.Text);
                    break;
                case ExpressionSegment expression:
                    var name = VariablePrefix + (variables.Count + 1).ToString(CultureInfo.InvariantCulture);
                    variables[name] = Template.ToText(Template.Resolve(expression, scope, out var found), found);
                    script.Append(quote switch
                    {
                        Quote.Double => $"${{{name}}}",
                        Quote.Single => $"'\"${{{name}}}\"'",
                        _ => $"\"${{{name}}}\"",
                    });
                    break;
            }
        }

        return new RenderedShellCommand(script.ToString(), variables);
    }

    /// <summary>Renders <paramref name="template"/> and adds its variables to the action's <c>env</c> parameter.</summary>
    public static string RenderInto(Template template, TemplateScope scope, JsonObject parameters)
    {
        var rendered = Render(template, scope);
        if (rendered.Variables.Count > 0)
        {
            var env = parameters["env"] as JsonObject ?? [];
            foreach (var (name, value) in rendered.Variables)
            {
                env[name] = value;
            }

            parameters["env"] = env;
        }

        return rendered.Script;
    }

    private enum Quote
    {
        None,
        Single,
        Double,
    }

    // Follows sh quoting through the literal text so each substitution is quoted correctly where it lands.
    private static Quote Track(string text, Quote quote)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (quote)
            {
                case Quote.None when c == '\\':
                case Quote.Double when c == '\\':
                    i++;
                    break;
                case Quote.None when c == '\'':
                    quote = Quote.Single;
                    break;
                case Quote.None when c == '"':
                    quote = Quote.Double;
                    break;
                case Quote.Single when c == '\'':
                case Quote.Double when c == '"':
                    quote = Quote.None;
                    break;
            }
        }

        return quote;
    }
}
