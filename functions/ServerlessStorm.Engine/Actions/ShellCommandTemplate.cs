using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Expressions;
using ServerlessStorm.Engine.Expressions.Runtime;

namespace ServerlessStorm.Engine.Actions;

/// <summary>A shell command line whose template values travel as environment variables, not as shell text.</summary>
public sealed record RenderedShellCommand(string Script, IReadOnlyDictionary<string, string> Variables);

/// <summary>
/// Renders the <c>cmd</c> of a shell action so that data can never become shell syntax. The template's own text is
/// the script, written by the pack author and run by <c>/bin/sh -c</c> as StackStorm runs it. Each value a
/// <c>{{ … }}</c> produces becomes a reference to an environment variable (<c>STORM_ARG_1</c>, …) holding it, quoted
/// for the place it stands in, so the shell expands it as one literal word and never parses it: a payload of
/// <c>$(touch /tmp/x)</c> is printed, not run. Statements (<c>{% if %}</c>, <c>{% for %}</c>) shape the script as usual.
/// </summary>
public static class ShellCommandTemplate
{
    public const string VariablePrefix = "STORM_ARG_";

    public static RenderedShellCommand Render(Template template, TemplateScope scope)
    {
        var sink = new ShellSink(scope.Limits.MaxOutputLength);
        template.RenderTo(scope, sink);
        return new RenderedShellCommand(sink.Script.ToString(), sink.Variables);
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

    private sealed class ShellSink(int limit) : IOutputSink
    {
        private Quote _quote = Quote.None;

        public StringBuilder Script { get; } = new();

        public Dictionary<string, string> Variables { get; } = new(StringComparer.Ordinal);

        public void Text(string text)
        {
            Track(text);
            Append(text);
        }

        public void Value(object? value)
        {
            var name = VariablePrefix + (Variables.Count + 1).ToString(CultureInfo.InvariantCulture);
            Variables[name] = Py.Str(value);
            Append(_quote switch
            {
                Quote.Double => $"${{{name}}}",
                Quote.Single => $"'\"${{{name}}}\"'",
                _ => $"\"${{{name}}}\"",
            });
        }

        private void Append(string text)
        {
            if (Script.Length + text.Length > limit)
            {
                throw new ExpressionLimitException($"the command is over the {limit} character limit");
            }

            Script.Append(text);
        }

        // Follows sh quoting through the literal text so each substitution is quoted correctly where it lands.
        private void Track(string text)
        {
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                switch (_quote)
                {
                    case Quote.None when c == '\\':
                    case Quote.Double when c == '\\':
                        i++;
                        break;
                    case Quote.None when c == '\'':
                        _quote = Quote.Single;
                        break;
                    case Quote.None when c == '"':
                        _quote = Quote.Double;
                        break;
                    case Quote.Single when c == '\'':
                    case Quote.Double when c == '"':
                        _quote = Quote.None;
                        break;
                }
            }
        }
    }
}
