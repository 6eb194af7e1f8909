using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Api;

public sealed partial class StormApi
{
    /// <summary>
    /// GET /api/v1/packs: every pack folder read at start, StackStorm's pack fields plus whether it loaded, what it
    /// holds, the problems that left it out or the warnings it loaded with, and where its Python stands (its
    /// virtualenv's state, read now, so a <c>storm pack install</c> since the start shows).
    /// </summary>
    public Task<ApiResponse> ListPacksAsync(CancellationToken cancellationToken)
    {
        var report = catalog.LoadReport.Count > 0
            ? catalog.LoadReport
            : [.. catalog.Packs.Values.Select(p => new PackLoadStatus(p.Name, p.Directory, true, [], []))];
        var packs = new JsonArray();
        foreach (var status in report.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            var loaded = status.Loaded ? catalog.Packs.GetValueOrDefault(status.Name) : null;
            packs.Add(new JsonObject
            {
                ["ref"] = status.Name,
                ["name"] = status.Name,
                ["version"] = loaded?.Version,
                ["description"] = loaded?.Description,
                ["loaded"] = status.Loaded,
                ["actions"] = catalog.Actions.Values.Count(a => status.Loaded && a.Pack == status.Name),
                ["rules"] = catalog.Rules.Count(r => status.Loaded && r.Pack == status.Name),
                ["trigger_types"] = catalog.TriggerTypes.Values.Count(t => status.Loaded && t.Pack == status.Name),
                ["problems"] = new JsonArray([.. status.Problems.Select(p => (JsonNode)p.ToString())]),
                ["warnings"] = new JsonArray([.. status.Warnings.Select(p => (JsonNode)p.ToString())]),
                ["python"] = PythonState(status),
            });
        }

        return Task.FromResult(new ApiResponse(200, packs));
    }

    private JsonObject? PythonState(PackLoadStatus status)
    {
        if (pythonLauncher is { ChoosesInterpreter: false })
        {
            // The Function app: pack code runs on the Python host, with the requirements it was deployed with.
            return new JsonObject
            {
                ["state"] = "python-host",
                ["reason"] = File.Exists(Path.Combine(status.Directory, Python.PackVirtualEnvironments.RequirementsFile))
                    ? "runs on the Python host, which installed its requirements.txt when it was deployed"
                    : "runs on the Python host",
            };
        }

        try
        {
            return python?.Describe(status.Name, status.Directory).ToJson();
        }
        catch (Python.PythonEnvironmentException ex)
        {
            // No interpreter at all: the listing still answers, saying so.
            return new JsonObject { ["state"] = "unavailable", ["reason"] = ex.Message };
        }
    }
}
