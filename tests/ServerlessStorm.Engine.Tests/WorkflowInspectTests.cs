using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Engine.Tests;

/// <summary>What `storm workflow inspect` reports: every problem of a workflow file at once, with its line.</summary>
public sealed class WorkflowInspectTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("storm-wf-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Inspect_ReportsEveryProblem_WithItsLineAndField()
    {
        var path = Path.Combine(_folder, "broken.yaml");
        File.WriteAllText(path, """
            version: 1.0
            input: [hosts]
            tasks:
              start:
                action: core.local
                input: {cmd: "<% ctx(hosts) %>"}
                next:
                  - when: <% succeeded( %>
                    do: [check, nowhere]
              check:
                action: nope.missing
                timeout: 5
                next: [{do: joined}]
              joined:
                join: 3
                action: core.noop
              island_a:
                action: core.noop
                next: [{do: island_b}]
              island_b:
                action: core.noop
                next: [{do: island_a}]
            """);

        var (_, problems) = WorkflowLoader.Load(path, "broken.yaml", action => action.StartsWith("core.", StringComparison.Ordinal));
        var lines = problems.Select(p => p.ToString()).ToList();

        Assert.Contains(lines, l => l.StartsWith("broken.yaml:8:", StringComparison.Ordinal) && l.Contains("tasks.start.next[0].when: expression does not parse", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.start.next[0].do: 'nowhere' is neither a task nor an engine command", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("broken.yaml:11:", StringComparison.Ordinal) && l.Contains("tasks.check.action: action 'nope.missing' does not exist", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.check.timeout: unknown field for a task", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.joined.join: can never be satisfied: it waits for 3 inbound task(s) and 1 lead to it", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.island_a: is unreachable", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tasks.island_b: is unreachable", StringComparison.Ordinal));
        Assert.Equal(7, problems.Count);
    }

    [Fact]
    public void Inspect_RefusesFilesThatAreNotWorkflows()
    {
        var path = Path.Combine(_folder, "not.yaml");
        File.WriteAllText(path, "version: 2.0\nsteps: []\n");

        var (definition, problems) = WorkflowLoader.Load(path, "not.yaml");

        Assert.Null(definition);
        Assert.Contains(problems, p => p.Field == "version" && p.Message == "must be 1.0 (Orquesta)");
        Assert.Contains(problems, p => p.Field == "steps");
        Assert.Contains(problems, p => p.Field == "tasks" && p.Message == "a workflow needs at least one task");
    }
}
