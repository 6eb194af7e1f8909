using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// Orquesta's inline forms — <c>action: core.echo message="hi"</c> and <c>publish: a=&lt;% result() %&gt;</c> — read as
/// Orquesta's parameter reader reads them, and checked at inspect like the long forms.
/// </summary>
public sealed class WorkflowInlineFormTests
{
    // Each expected value is what orquesta.utils.parameters.parse_inline_params gives for the same text.
    [Theory]
    [InlineData("""message="hi" count=3""", """{"message":"hi","count":3}""")]
    [InlineData("""x=1.5 y=-2 z=True w=FALSE n=null""", """{"x":1.5,"y":-2,"z":true,"w":false,"n":null}""")]
    [InlineData("""s='single' q="3" e="" """, """{"s":"single","q":"3","e":""}""")] // quoted stays text
    [InlineData("""obj='{"a": 1}' list=[1, 2]""", """{"obj":{"a":1},"list":[1,2]}""")] // a quoted {…} is JSON
    [InlineData("""words=[a, b]""", """{"words":"[a, b]"}""")] // not JSON: text
    [InlineData("""strs=[1, "a"]""", """{"strs":"[1, \"a\"]"}""")] // quotes inside: text, as Orquesta
    [InlineData("""half=.5""", """{"half":".5"}""")] // not a JSON number: text
    [InlineData("""msg="task2 done", cd=<% result() %>; n=1""", """{"msg":"task2 done","cd":"<% result() %>","n":1}""")] // delimited by , or ;
    [InlineData("""cmd=<% ctx(cmd) %> msg="{{ ctx('x') }}" hello="Hello <% ctx().name %>" """,
        """{"cmd":"<% ctx(cmd) %>","msg":"{{ ctx('x') }}","hello":"Hello <% ctx().name %>"}""")]
    public void Parse_ReadsTheValueFormsOrquestaReads(string text, string expected)
    {
        var (parameters, unread) = InlineParameters.Parse(text);

        Assert.Empty(unread);
        var actual = new JsonObject(parameters.Select(p => KeyValuePair.Create(p.Name, p.Value)));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), actual), actual.ToJsonString());
    }

    [Fact]
    public void Parse_ReportsWhatOrquestaWouldSilentlyDrop()
    {
        // An unquoted word is none of Orquesta's value forms: its reader skips it without a word.
        var (parameters, unread) = InlineParameters.Parse("message=hi count=3");

        Assert.Equal(["count"], parameters.Select(p => p.Name));
        Assert.Equal(["message=hi"], unread);
    }

    [Fact]
    public void InlineForms_MeanTheSameAsTheLongForms()
    {
        var inline = Run("""
            version: 1.0
            input: [name, cmd]
            tasks:
              greet:
                action: core.echo message="hi <% ctx(name) %>" count=3 loud=true cmd=<% ctx(cmd) %> extra={{ ctx('name') }}
                next:
                  - when: <% succeeded() %>
                    publish: said=<% result().stdout %> n=3 who="<% ctx(name) %>"
                    do: after
              after:
                action: core.noop
            output: [{said: <% ctx(said) %>}, {n: <% ctx(n) %>}, {who: <% ctx(who) %>}]
            """);
        var longForm = Run("""
            version: 1.0
            input: [name, cmd]
            tasks:
              greet:
                action: core.echo
                input: {message: "hi <% ctx(name) %>", count: 3, loud: true, cmd: <% ctx(cmd) %>, extra: "{{ ctx('name') }}"}
                next:
                  - when: <% succeeded() %>
                    publish: [{said: <% result().stdout %>}, {n: 3}, {who: "<% ctx(name) %>"}]
                    do: after
              after:
                action: core.noop
            output: [{said: <% ctx(said) %>}, {n: <% ctx(n) %>}, {who: <% ctx(who) %>}]
            """);

        Assert.Equal("core.echo", inline.First.ActionRef);
        Assert.Equal("""{"message":"hi storm","count":3,"loud":true,"cmd":["ls","-l"],"extra":"storm"}""", inline.First.Input.ToJsonString());
        Assert.Equal(longForm.First.Input.ToJsonString(), inline.First.Input.ToJsonString());
        Assert.Equal("""{"said":"hi storm","n":3,"who":"storm"}""", inline.Done.Output!.ToJsonString());
        Assert.Equal(longForm.Done.Output!.ToJsonString(), inline.Done.Output.ToJsonString());
    }

    [Fact]
    public void InlineParameters_ReplaceInput_AsOrquestaDoes()
    {
        // Orquesta's TaskSpec: when the action string has parameters, they become the task's input; input: is not read
        // (and a key=value string in input: stays one string, evaluated as an expression).
        var run = Run("""
            version: 1.0
            tasks:
              t:
                action: core.echo message="inline"
                input: {message: "long", other: 1}
            """, []);

        Assert.Equal("""{"message":"inline"}""", run.First.Input.ToJsonString());
    }

    [Fact]
    public void InputAsOneExpression_GivesTheParameters_AndOneThatIsNoMappingFailsTheWorkflow()
    {
        const string Workflow = """
            version: 1.0
            input: [params]
            tasks:
              t:
                action: core.echo
                input: <% ctx(params) %>
            """;

        var mapping = Run(Workflow, new JsonObject { ["params"] = new JsonObject { ["message"] = "from ctx" } });
        var text = Run(Workflow, new JsonObject { ["params"] = "message=hi" });

        Assert.Equal("""{"message":"from ctx"}""", mapping.First.Input.ToJsonString());
        Assert.Null(text.FirstOrNull);
        Assert.Equal(ExecutionStatus.Failed, text.Done.Status);
        Assert.Contains("input gave \"message=hi\", not a mapping of parameters", Assert.Single(text.Done.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Inspect_ChecksInlineFormsLikeTheLongOnes()
    {
        var (_, problems) = WorkflowLoader.LoadText("""
            version: 1.0
            tasks:
              bad_expression:
                action: core.echo message=<% ctx(name %>
                next: [{do: bad_publish}]
              bad_publish:
                action: core.noop
                next:
                  - publish: ok=1 broken=<% result( %>
                    do: dropped_word
              dropped_word:
                action: core.echo message=hi count=3
                next: [{do: [input_pairs, missing, templated]}]
              input_pairs:
                action: core.echo
                input: x=1 y=<% ctx().z %>
              missing:
                action: nope.missing x=1
              templated:
                action: <% ctx(act) %> x=1
            """, "inline.yaml", a => a.StartsWith("core.", StringComparison.Ordinal));
        var lines = problems.Select(p => p.ToString()).ToList();

        Assert.Contains(lines, l => l.StartsWith("inline.yaml:4:", StringComparison.Ordinal) && l.Contains("tasks.bad_expression.action.message: expression does not parse", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.bad_publish.next[0].publish.broken: expression does not parse", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("inline.yaml:12:", StringComparison.Ordinal)
            && l.Contains("tasks.dropped_word.action: 'message=hi' is not a key=value pair of action core.echo's parameters", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.input_pairs.input: Orquesta reads key=value pairs after the action ref", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.missing.action: action 'nope.missing' does not exist", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.templated.action: an action named by an expression takes its parameters in input:", StringComparison.Ordinal));
        Assert.Equal(6, problems.Count);
    }

    private sealed record Outcome(CompleteWorkflow Done, List<RunAction> Actions)
    {
        public RunAction First => Actions[0];

        public RunAction? FirstOrNull => Actions.FirstOrDefault();
    }

    private static Outcome Run(string yaml, JsonObject? input = null)
    {
        var (workflow, problems) = WorkflowLoader.LoadText(yaml, "wf.yaml");
        Assert.Empty(problems);
        var interpreter = new WorkflowInterpreter(workflow!);
        var actions = new List<RunAction>();
        var pending = new Queue<RunAction>();
        CompleteWorkflow? done = null;
        void Take(IReadOnlyList<WorkflowCommand> commands)
        {
            foreach (var command in commands)
            {
                if (command is RunAction run)
                {
                    actions.Add(run);
                    pending.Enqueue(run);
                }
                else
                {
                    done = (CompleteWorkflow)command;
                }
            }
        }

        Take(interpreter.Start(input ?? new JsonObject { ["name"] = "storm", ["cmd"] = new JsonArray("ls", "-l") }));
        while (pending.TryDequeue(out var next))
        {
            Take(interpreter.OnActionCompleted(next.Id, ExecutionStatus.Succeeded, new JsonObject { ["stdout"] = next.Input["message"]?.DeepClone() }));
        }

        return new Outcome(done!, actions);
    }
}
