using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>python-script actions from a pack on disk, run by a real <c>storm serve</c> and read back through its API.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class PythonServeTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task PythonActions_SucceedAndFail_AsTheApiShowsThem()
    {
        using var packs = new TempPacks().WithPack("pyserve").WithRepositoryCore();
        packs.Write("pyserve/actions/greet.py", """
            from st2common.runners.base_action import Action

            class Greet(Action):
                def run(self, name):
                    print("greeting " + name)
                    return {"greeting": "hello " + name}
            """);
        packs.Write("pyserve/actions/greet.yaml", "name: greet\nrunner_type: python-script\nentry_point: greet.py\nparameters:\n  name: {type: string, required: true}\n");
        packs.Write("pyserve/actions/fail.py", """
            from st2common.runners.base_action import Action

            class Fail(Action):
                def run(self):
                    raise ValueError("no such host")
            """);
        packs.Write("pyserve/actions/fail.yaml", "name: fail\nrunner_type: python-script\nentry_point: fail.py\n");
        var journal = Path.Combine(Path.GetTempPath(), $"storm-journal-{Guid.NewGuid():N}");

        await using var storm = await StormProcess.ServeAsync(new Dictionary<string, string> { ["Storm__Python__Interpreter"] = "/usr/bin/python3" },
            "--packs", packs.Root, "--storage", azurite.ConnectionString, "--audit-journal", journal);
        using var http = StormProcess.NewHttpClient();

        async Task<JsonObject> RunAsync(string action, JsonObject parameters)
        {
            using var response = await http.PostAsync(storm.Url + "/api/v1/executions",
                new StringContent(new JsonObject { ["action"] = action, ["parameters"] = parameters }.ToJsonString(), Encoding.UTF8, "application/json"));
            var id = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
            return await Eventually.ReturnsAsync(async () => (await http.GetFromJsonAsync<JsonObject>($"{storm.Url}/api/v1/executions/{id}"))!,
                e => ExecutionStatus.IsTerminal(e["status"]!.GetValue<string>()), what: $"{action} finished");
        }

        var greeted = await RunAsync("pyserve.greet", new JsonObject { ["name"] = "Ada" });
        var failed = await RunAsync("pyserve.fail", []);

        Assert.Equal(ExecutionStatus.Succeeded, greeted["status"]!.GetValue<string>());
        Assert.Equal("hello Ada", greeted["result"]!["result"]!["greeting"]!.GetValue<string>());
        Assert.Equal("greeting Ada\n", greeted["result"]!["stdout"]!.GetValue<string>());
        Assert.Equal(ExecutionStatus.Failed, failed["status"]!.GetValue<string>());
        Assert.Equal(1, failed["result"]!["exit_code"]!.GetValue<int>());
        Assert.Contains("ValueError: no such host", failed["result"]!["stderr"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("python-script' runner is not supported", storm.Output, StringComparison.Ordinal);
    }
}
