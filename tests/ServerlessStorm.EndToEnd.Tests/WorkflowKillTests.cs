using System.Net.Http.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>A workflow survives its host being killed: storm serve is SIGKILLed mid-workflow, started again, and the workflow completes.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class WorkflowKillTests(AzuriteFixture azurite) : IDisposable
{
    private readonly TempPacks _packs = new TempPacks().WithPack("wf");
    private readonly string _marks = Path.Combine(Path.GetTempPath(), $"storm-kill-{Guid.NewGuid():N}.log");
    private readonly string _journal = Path.Combine(Path.GetTempPath(), $"storm-kill-journal-{Guid.NewGuid():N}");

    public void Dispose()
    {
        _packs.Dispose();
        File.Delete(_marks);
        if (Directory.Exists(_journal))
        {
            Directory.Delete(_journal, recursive: true);
        }
    }

    [Fact]
    public async Task KilledMidWorkflow_Restarted_TheWorkflowCompletes_AndNoCompletedTaskRunsMoreThanOnceMore()
    {
        _packs.Write("wf/actions/steps.yaml", "name: steps\nrunner_type: orquesta\nentry_point: workflows/steps.yaml\nparameters:\n  marks: {type: string, required: true}\n");
        _packs.Write("wf/actions/workflows/steps.yaml", """
            version: 1.0
            input: [marks]
            tasks:
              one:
                action: core.local
                input: {cmd: 'echo one >> "$MARKS"; sleep 1', env: {MARKS: "<% ctx(marks) %>"}}
                next: [{do: two}]
              two:
                action: core.local
                input: {cmd: 'echo two-start >> "$MARKS"; sleep 4; echo two >> "$MARKS"', env: {MARKS: "<% ctx(marks) %>"}}
                next: [{do: three}]
              three:
                action: core.local
                input: {cmd: 'echo three >> "$MARKS"', env: {MARKS: "<% ctx(marks) %>"}}
            output: [{done: true}]
            """);
        var environment = new Dictionary<string, string>
        {
            ["Storage__Prefix"] = $"kill{Random.Shared.Next(100_000, 999_999)}",
            ["Storm__Workflows__VisibilityTimeout"] = "00:00:10",
            ["Storm__Workflows__LeaseInterval"] = "00:00:06",
        };
        string[] serve = ["--storage", azurite.ConnectionString, "--packs", _packs.Root, "--audit-journal", _journal];
        using var http = StormProcess.NewHttpClient();

        var first = await StormProcess.ServeAsync(environment, serve);
        var started = await (await http.PostAsJsonAsync($"{first.Url}/api/v1/executions", new JsonObject
        {
            ["action"] = "wf.steps",
            ["parameters"] = new JsonObject { ["marks"] = _marks },
        })).Content.ReadFromJsonAsync<JsonObject>();
        var id = started!["id"]!.GetValue<string>();
        await Eventually.TrueAsync(() => File.Exists(_marks) && File.ReadAllText(_marks).Contains("two-start", StringComparison.Ordinal),
            TimeSpan.FromSeconds(60), "task two to start");
        await first.KillAsync();

        await using var second = await StormProcess.ServeAsync(environment, serve);
        var finished = await Eventually.ReturnsAsync(async () => (await http.GetFromJsonAsync<JsonObject>($"{second.Url}/api/v1/executions/{id}"))!,
            e => e["status"]!.GetValue<string>() is "succeeded" or "failed", TimeSpan.FromSeconds(120), "the workflow to end after the restart");

        Assert.Equal("succeeded", finished["status"]!.GetValue<string>());
        Assert.True(finished["result"]!["output"]!["done"]!.GetValue<bool>());
        // A task that had completed runs at most once more (Durable delivers at least once); the one the kill
        // interrupted runs again, once, and its first run never finished.
        var marks = File.ReadAllLines(_marks);
        Assert.InRange(marks.Count(m => m == "one"), 1, 2);
        Assert.Equal(2, marks.Count(m => m == "two-start"));
        Assert.Equal(1, marks.Count(m => m == "two"));
        Assert.InRange(marks.Count(m => m == "three"), 1, 2);
    }
}
