using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>
/// The write-behind audit loses nothing when its process is killed: storm serve runs a webhook's action with the
/// audit's storing held back, is SIGKILLed, and the next start stores the whole trace from the journal. The journal's
/// lock dies with the process, and while it lives no second server can take its journal.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class AuditWriteBehindKillTests(AzuriteFixture azurite) : IDisposable
{
    private readonly string _journal = Path.Combine(Path.GetTempPath(), $"storm-journal-{Guid.NewGuid():N}");

    public void Dispose()
    {
        try
        {
            Directory.Delete(_journal, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    [Fact]
    public async Task Killed_BeforeTheAuditWasStored_TheNextStartStoresTheWholeTrace()
    {
        var storage = azurite.NewStorageOptions();
        var environment = new Dictionary<string, string>
        {
            ["Storage__Prefix"] = storage.Prefix,
            ["Storage__WriteBehind__FlushDelay"] = "01:00:00", // nothing is stored unless a reader asks for it
        };
        string[] serve = ["--storage", azurite.ConnectionString, "--audit-journal", _journal]; // written behind: the default
        var stored = new TableAuditStore(Options.Create(storage), TimeProvider.System);
        using var http = StormProcess.NewHttpClient();

        var first = await StormProcess.ServeAsync(environment, serve);
        var accepted = await (await http.PostAsync($"{first.Url}/api/v1/webhooks/ping", new StringContent("""{"n": 1}""", Encoding.UTF8, "application/json")))
            .Content.ReadFromJsonAsync<JsonObject>();
        var trace = accepted!["trace_tag"]!.GetValue<string>();
        // The execution's end is in the journal (reading the trace through the API would store it first). Only an
        // execution's line counts: the rule enforcement's line says "succeeded" too, before the action has run.
        await Eventually.TrueAsync(() => JournalText().Contains(trace, StringComparison.Ordinal) && JournalText().Split('\n').Any(line =>
                line.StartsWith("{\"Execution", StringComparison.Ordinal) && line.Contains("\"Status\":\"succeeded\"", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(60), "the execution's end in the journal");

        // While it runs, its journal is its own: a second server on the same folder is refused.
        var refused = await StormProcess.RunAsync(environment, ["serve", "--port", AzuriteFixture.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), .. serve]);
        Assert.True(refused.ExitCode != 0 && refused.StdErr.Contains("is in use by another running server", StringComparison.Ordinal), refused.ToString());

        await first.KillAsync();
        Assert.Empty((await stored.GetTraceAsync(trace, CancellationToken.None)).Executions);

        await using var second = await StormProcess.ServeAsync(environment, serve);
        var recorded = await Eventually.ReturnsAsync(() => stored.GetTraceAsync(trace, CancellationToken.None),
            t => t.Executions.Count == 1 && t.HasProcessedWebhook(), TimeSpan.FromSeconds(60), "the trace stored after the restart");

        var execution = recorded.Executions[0];
        Assert.Equal("succeeded", execution.Status);
        Assert.Equal(["requested", "scheduled", "running", "succeeded"], execution.History.Select(h => h.Status));
        Assert.Equal(execution.Id, Assert.Single(recorded.RuleEnforcements).ExecutionId);
        var viaApi = await http.GetFromJsonAsync<JsonObject>($"{second.Url}/api/v1/executions/{execution.Id}");
        Assert.Equal("succeeded", viaApi!["status"]!.GetValue<string>());
    }

    private string JournalText() => AuditJournalFiles.ReadAll(_journal);
}
