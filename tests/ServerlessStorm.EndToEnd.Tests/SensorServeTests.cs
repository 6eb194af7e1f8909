using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>A C# polling sensor in a real <c>storm serve</c> with its state in Azurite, across a restart of the server.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class SensorServeTests(AzuriteFixture azurite) : IDisposable
{
    private readonly TempPacks _packs = new TempPacks().WithPack("watch").WithRepositoryCore();
    private readonly string _inbox = Path.Combine(Path.GetTempPath(), "storm-e2e-inbox-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly string _journal = Path.Combine(Path.GetTempPath(), "storm-e2e-journal-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        _packs.Dispose();
        foreach (var folder in new[] { _inbox, _journal }.Where(Directory.Exists))
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task APollingSensor_FiresItsRule_IsListedWithItsState_AndAfterARestartGoesOnFromItsKeptState()
    {
        var dll = Path.Combine(RepositoryPaths.Packs, "examples", "actions", "dotnet", "ExampleActions.dll");
        Directory.CreateDirectory(Path.Combine(_packs.Root, "watch", "sensors", "lib"));
        File.Copy(dll, Path.Combine(_packs.Root, "watch", "sensors", "lib", "ExampleActions.dll"));
        _packs.Write("watch/sensors/new_files.yaml", """
            class_name: NewFilesSensor
            entry_point: lib/ExampleActions.dll:ExampleActions.NewFilesSensor
            poll_interval: 1
            trigger_types:
              - name: new_file
                payload_schema:
                  type: object
                  properties: {directory: {type: string}, file: {type: string}, size: {type: integer}}
                  required: [directory, file, size]
            """);
        _packs.Write("watch/actions/got.yaml", "name: got\nrunner_type: local-shell-cmd\nparameters:\n  file: {type: string}\n  cmd: {default: 'echo got {{ file }}'}\n");
        _packs.Write("watch/rules/on_file.yaml", $$$"""
            name: on_file
            pack: watch
            trigger: {type: watch.new_file, parameters: {directory: "{{{_inbox}}}"}}
            action: {ref: watch.got, parameters: {file: "{{ trigger.file }}"}}
            """);
        Directory.CreateDirectory(_inbox);
        await File.WriteAllTextAsync(Path.Combine(_inbox, "a.txt"), "a");
        var storage = azurite.NewStorageOptions();
        var audit = new TableAuditStore(Options.Create(storage), TimeProvider.System);
        var port = AzuriteFixture.FreePort().ToString(CultureInfo.InvariantCulture);
        Task<StormProcess> ServeAsync() => StormProcess.ServeAsync(new Dictionary<string, string> { ["Storage__Prefix"] = storage.Prefix },
            "--packs", _packs.Root, "--port", port, "--storage", azurite.ConnectionString, "--audit-journal", _journal);
        async Task<IReadOnlyList<TriggerInstanceRecord>> FromTheSensorAsync() =>
            [.. (await audit.QueryTriggerInstancesAsync(new AuditQuery(Limit: 100), CancellationToken.None)).Where(t => t.TriggerType == "watch.new_file")];

        JsonNode listed;
        CliResult table;
        await using (var storm = await ServeAsync())
        {
            IReadOnlyList<TriggerInstanceRecord> first;
            try
            {
                first = await Eventually.ReturnsAsync(FromTheSensorAsync, t => t.Count == 1, TimeSpan.FromSeconds(60), "a.txt's trigger instance");
            }
            catch (TimeoutException ex)
            {
                throw new TimeoutException($"{ex.Message}; the server wrote:{Environment.NewLine}{storm.Output}", ex);
            }

            var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(first[0].TraceTag, CancellationToken.None),
                t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status), TimeSpan.FromSeconds(60), "the rule's execution");
            Assert.Equal("got a.txt", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
            Assert.Equal("sensor:watch.NewFilesSensor", Assert.Single(trace.TriggerInstances).User);
            listed = JsonNode.Parse((await Eventually.ReturnsAsync(() => StormProcess.RunAsync("sensor", "list", "--json", "--api", storm.Url),
                r => r.ExitCode == 0 && JsonNode.Parse(r.StdOut)![0]!["polls"]!.GetValue<long>() >= 2, what: "two polls listed")).StdOut)![0]!;
            table = await StormProcess.RunAsync("sensor", "list", "--api", storm.Url);
        }

        // Stopped, a file arrives; the restarted server's sensor knows a.txt from its kept state.
        await File.WriteAllTextAsync(Path.Combine(_inbox, "b.txt"), "b");
        await using (var storm = await ServeAsync())
        {
            var both = await Eventually.ReturnsAsync(FromTheSensorAsync, t => t.Count >= 2, TimeSpan.FromSeconds(60), "b.txt's trigger instance");
            var polls = JsonNode.Parse((await StormProcess.RunAsync("sensor", "list", "--json", "--api", storm.Url)).StdOut)![0]!["polls"]!.GetValue<long>();
            await Eventually.ReturnsAsync(() => StormProcess.RunAsync("sensor", "list", "--json", "--api", storm.Url),
                r => r.ExitCode == 0 && JsonNode.Parse(r.StdOut)![0]!["polls"]!.GetValue<long>() >= polls + 2, what: "two more polls after the restart");

            Assert.Equal(["a.txt", "b.txt"], (await FromTheSensorAsync()).Select(t => t.Payload!["file"]!.GetValue<string>()).Order(StringComparer.Ordinal));

            // An operator disables it, then enables it again: polled again from then on.
            var disabled = await StormProcess.RunAsync("sensor", "disable", "watch.NewFilesSensor", "--api", storm.Url);
            var whileDisabled = JsonNode.Parse((await StormProcess.RunAsync("sensor", "list", "--json", "--api", storm.Url)).StdOut)![0]!;
            var enabled = await StormProcess.RunAsync("sensor", "enable", "watch.NewFilesSensor", "--api", storm.Url);
            var since = JsonNode.Parse((await StormProcess.RunAsync("sensor", "list", "--json", "--api", storm.Url)).StdOut)![0]!["polls"]!.GetValue<long>();
            await Eventually.ReturnsAsync(() => StormProcess.RunAsync("sensor", "list", "--json", "--api", storm.Url),
                r => r.ExitCode == 0 && JsonNode.Parse(r.StdOut)![0]!["polls"]!.GetValue<long>() > since, what: "a poll after it was enabled again");

            Assert.True(disabled.ExitCode == 0, disabled.ToString());
            Assert.Contains("watch.NewFilesSensor: disabled (state disabled)", disabled.StdOut, StringComparison.Ordinal);
            Assert.Equal(("disabled", false), (whileDisabled["state"]!.GetValue<string>(), whileDisabled["enabled"]!.GetValue<bool>()));
            Assert.True(enabled.ExitCode == 0, enabled.ToString());
            var unknown = await StormProcess.RunAsync("sensor", "disable", "watch.Nope", "--api", storm.Url);
            Assert.Equal(2, unknown.ExitCode);
            Assert.Contains("sensor 'watch.Nope' is not in the loaded packs", unknown.StdErr, StringComparison.Ordinal);
        }

        Assert.Equal(("watch.NewFilesSensor", "running", "dotnet", 1), (listed["ref"]!.GetValue<string>(), listed["state"]!.GetValue<string>(),
            listed["runner"]!.GetValue<string>(), listed["poll_interval"]!.GetValue<int>()));
        Assert.Null(listed["last_error"]);
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("watch.NewFilesSensor", table.StdOut, StringComparison.Ordinal);
        Assert.Contains("running", table.StdOut, StringComparison.Ordinal);
    }
}
