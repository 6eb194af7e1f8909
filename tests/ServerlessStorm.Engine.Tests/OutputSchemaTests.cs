using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>An action's output_schema is checked against what its runner produced.</summary>
public sealed class OutputSchemaTests
{
    private static void WriteReport(TempPacks packs, string name, string stdout, string schema) => packs.Write($"reports/actions/{name}.yaml", $$"""
        name: {{name}}
        runner_type: local-shell-cmd
        parameters:
          cmd:
            immutable: true
            default: |-
              echo '{{stdout}}'
        output_schema:
        {{schema}}
        """);

    [Fact]
    public async Task Output_ThatMatches_Succeeds_AndOutputThatDoesNot_FailsNamingEveryMismatch()
    {
        using var packs = new TempPacks().WithPack("reports");
        const string shortForm = "  count: {type: integer, required: true}\n  status: {type: string, enum: [ok]}";
        WriteReport(packs, "good", """{"count": 3, "status": "ok", "extra": true}""", shortForm);
        WriteReport(packs, "bad", """{"status": "bad"}""", shortForm);
        WriteReport(packs, "full", """[1, 2, 3]""", "  type: array\n  items: {type: integer}\n  maxItems: 2");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs.Root);
        var service = host.Services.GetRequiredService<ExecutionService>();

        var good = await host.WaitForExecutionAsync((await service.RunAsync("reports.good", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var bad = await host.WaitForExecutionAsync((await service.RunAsync("reports.bad", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var full = await host.WaitForExecutionAsync((await service.RunAsync("reports.full", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);

        Assert.Equal(ExecutionStatus.Succeeded, good.Status);
        Assert.Equal(ExecutionStatus.Failed, bad.Status);
        Assert.Equal("""the output (stdout) does not match the action's output_schema: count: is required; status: "bad" is not one of ["ok"]""", bad.Error);
        Assert.Contains("\"bad\"", bad.Result!["stdout"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(ExecutionStatus.Failed, full.Status);
        Assert.EndsWith("has 3 item(s), more than 2", full.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OutputFieldsMarkedSecret_AreMaskedInTheResultAndTheLiveOutput()
    {
        using var packs = new TempPacks().WithPack("reports");
        WriteReport(packs, "login", """{"token": "tok-7f3a9e51", "user": "ann", "session": {"key": "k-5150"}, "creds": { "id": "c-2718", "pin": 90210 }}""",
            "  token: {type: string, secret: true}\n  user: {type: string}\n  session: {type: object, properties: {key: {type: string, secret: true}}}\n  creds: {type: object, secret: true}");
        var output = new InMemoryExecutionOutputStore();
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), packs.Root,
            services => services.AddSingleton<IExecutionOutputStore>(output));

        var login = await host.WaitForExecutionAsync((await host.Services.GetRequiredService<ExecutionService>().RunAsync("reports.login", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);

        Assert.Equal(ExecutionStatus.Succeeded, login.Status);
        // A secret object printed with its own spacing is masked by what is inside it.
        Assert.Equal("""{"token": "********", "user": "ann", "session": {"key": "********"}, "creds": { "id": "********", "pin": ******** }}""", login.Result!["stdout"]!.GetValue<string>());
        var live = string.Concat((await output.ReadAsync(login.Id, 0, CancellationToken.None)).Select(c => c.Text));
        Assert.Contains("\"user\": \"ann\"", live, StringComparison.Ordinal);
        Assert.DoesNotContain("tok-7f3a9e51", live, StringComparison.Ordinal);
        Assert.DoesNotContain("k-5150", live, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidOutputSchema_IsALoadError()
    {
        using var packs = new TempPacks().WithPack("reports");
        WriteReport(packs, "broken", "{}", "  count: {type: int}\n  name: {type: string, pattern: '(unclosed'}");

        var result = new PackLoader(new RunnerRegistry([])).LoadFrom(packs.Root);

        Assert.Contains(result.Problems, p => p.Field == "output_schema" && p.Message == "count: type 'int' is not one of string, integer, number, boolean, object, array, null");
        Assert.Contains(result.Problems, p => p.Field == "output_schema" && p.Message == "name: pattern '(unclosed' is not a valid regular expression");
    }
}
