using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>
/// The examples pack's Python sensor and Python action as the README walks through them, in a real storm serve: the
/// sensor's dispatch fires the rule that runs the action, and after a restart the sensor's datastore state keeps it
/// from alerting twice on the same full filesystem.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class PythonExamplesServeTests(AzuriteFixture azurite) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "storm-e2e-pyexamples-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task DiskSpaceSensor_FiresTheRule_LargestFilesRuns_AndAfterARestartItDoesNotAlertTwice()
    {
        // The repository's packs, the sensor polling every second; the config makes any filesystem "full".
        var packs = Path.Combine(_root, "packs");
        Copy(RepositoryPaths.Packs, packs);
        var sensorYaml = Path.Combine(packs, "examples", "sensors", "disk_space_sensor.yaml");
        await File.WriteAllTextAsync(sensorYaml, (await File.ReadAllTextAsync(sensorYaml)).Replace("poll_interval: 30", "poll_interval: 1", StringComparison.Ordinal));
        var watched = Path.Combine(_root, "var");
        Directory.CreateDirectory(watched);
        await File.WriteAllBytesAsync(Path.Combine(watched, "big.log"), new byte[200_000]);
        await File.WriteAllBytesAsync(Path.Combine(watched, "small.log"), new byte[10]);
        Directory.CreateDirectory(Path.Combine(_root, "configs"));
        await File.WriteAllTextAsync(Path.Combine(_root, "configs", "examples.yaml"), $"disk_paths: [\"{watched}\"]\ndisk_threshold: 0\nlargest_files_count: 1\n");

        var storage = azurite.NewStorageOptions();
        var audit = new TableAuditStore(Options.Create(storage), TimeProvider.System);
        var port = AzuriteFixture.FreePort().ToString(CultureInfo.InvariantCulture);
        Task<StormProcess> ServeAsync() => StormProcess.ServeAsync(new Dictionary<string, string> { ["Storage__Prefix"] = storage.Prefix },
            "--packs", packs, "--port", port, "--storage", azurite.ConnectionString, "--audit-journal", Path.Combine(_root, "journal"));
        async Task<IReadOnlyList<TriggerInstanceRecord>> AlertsAsync() =>
            [.. (await audit.QueryTriggerInstancesAsync(new AuditQuery(Limit: 100), CancellationToken.None)).Where(t => t.TriggerType == "examples.disk_space_low")];
        static async Task<JsonNode> SensorAsync(StormProcess storm) =>
            JsonNode.Parse((await StormProcess.RunAsync("sensor", "list", "--json", "--api", storm.Url)).StdOut)!.AsArray()
                .Single(s => s!["ref"]!.GetValue<string>() == "examples.DiskSpaceSensor")!;

        ExecutionRecord largest;
        await using (var storm = await ServeAsync())
        {
            IReadOnlyList<TriggerInstanceRecord> alerts;
            try
            {
                alerts = await Eventually.ReturnsAsync(AlertsAsync, t => t.Count == 1, TimeSpan.FromSeconds(60), "the sensor's alert");
            }
            catch (TimeoutException ex)
            {
                throw new TimeoutException($"{ex.Message}; the server wrote:{Environment.NewLine}{storm.Output}", ex);
            }

            var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(alerts[0].TraceTag, CancellationToken.None),
                t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status), TimeSpan.FromSeconds(60), "examples.largest_files");
            largest = trace.Executions[0];
            Assert.Equal("sensor:examples.DiskSpaceSensor", alerts[0].User);
            Assert.Equal(watched, alerts[0].Payload!["path"]!.GetValue<string>());
            var listed = await Eventually.ReturnsAsync(() => SensorAsync(storm), s => s["polls"]!.GetValue<long>() >= 2, what: "two polls");
            Assert.True(listed["state"]!.GetValue<string>() == "running" && listed["runner"]!.GetValue<string>() == "python", listed.ToJsonString());
        }

        await using (var storm = await ServeAsync())
        {
            var polls = (await Eventually.ReturnsAsync(() => SensorAsync(storm), s => s["polls"] is not null, what: "the sensor listed"))["polls"]!.GetValue<long>();
            await Eventually.ReturnsAsync(() => SensorAsync(storm), s => s["polls"]!.GetValue<long>() >= polls + 2, what: "two polls after the restart");

            Assert.Single(await AlertsAsync());
        }

        Assert.Equal(ExecutionStatus.Succeeded, largest.Status);
        Assert.Equal("examples.largest_files", largest.ActionRef);
        var files = largest.Result!["result"]!["files"]!.AsArray();
        Assert.Equal(Path.Combine(watched, "big.log"), Assert.Single(files)!["path"]!.GetValue<string>());
        Assert.Contains("big.log", largest.Result["stdout"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private static void Copy(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(from, file);
            if (relative.Split(Path.DirectorySeparatorChar).Any(part => part is "obj" or "bin"))
            {
                continue;
            }

            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, relative))!);
            File.Copy(file, Path.Combine(to, relative));
        }
    }
}
