using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// The log catalogue: alerts and queries key on its EventIds, so they must stay unique, every log must come from it,
/// and the operators' table in docs/observability.md must list each of them.
/// </summary>
public sealed partial class LogCatalogueTests
{
    private static readonly IReadOnlyList<(MethodInfo Method, LoggerMessageAttribute Log)> Events =
    [
        .. typeof(StormLogs).GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Select(m => (Method: m, Log: m.GetCustomAttribute<LoggerMessageAttribute>()!)),
    ];

    [Fact]
    public void EveryPublicMethod_IsALoggerMessage()
    {
        Assert.NotEmpty(Events);
        Assert.All(Events, e => Assert.True(e.Log is not null, $"StormLogs.{e.Method.Name} has no [LoggerMessage]"));
    }

    [Fact]
    public void EventIds_ArePositiveAndUnique()
    {
        Assert.All(Events, e => Assert.True(e.Log.EventId > 0, $"StormLogs.{e.Method.Name} has EventId {e.Log.EventId}"));
        var shared = Events.GroupBy(e => e.Log.EventId).Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => e.Method.Name))}").ToList();
        Assert.True(shared.Count == 0, "EventIds used twice: " + string.Join("; ", shared));
    }

    [Fact]
    public void EventNames_AreUniqueAndTheMethodsNames()
    {
        Assert.All(Events, e => Assert.Equal(e.Method.Name, e.Log.EventName));
        var shared = Events.GroupBy(e => e.Log.EventName).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(shared.Count == 0, "EventNames used twice: " + string.Join(", ", shared));
    }

    [Fact]
    public void LoggerMessages_AreDeclaredOnlyInTheCatalogue()
    {
        var functions = Path.Combine(RepositoryPaths.Root, "functions");
        var diagnostics = Path.Combine(functions, "ServerlessStorm.Engine", "Diagnostics");
        var catalogue = Path.Combine(diagnostics, "StormLogs.cs");
        Assert.True(File.Exists(catalogue), catalogue + " is missing");
        // The catalogue is one partial class: StormLogs.cs and an area's own StormLogs.<Area>.cs beside it.
        bool InCatalogue(string file) => Path.GetDirectoryName(file) == diagnostics && Path.GetFileName(file) is var name
            && (name == "StormLogs.cs" || (name.StartsWith("StormLogs.", StringComparison.Ordinal) && name.EndsWith(".cs", StringComparison.Ordinal)));
        var elsewhere = Directory.EnumerateFiles(functions, "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(functions, f) && !InCatalogue(f) && LoggerMessageDeclaration().IsMatch(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(RepositoryPaths.Root, f))
            .ToList();

        Assert.True(elsewhere.Count == 0, "[LoggerMessage] outside StormLogs.cs and its StormLogs.<Area>.cs parts (move it into the catalogue with a new EventId): " + string.Join(", ", elsewhere));
    }

    [Fact]
    public void ObservabilityDoc_ListsEveryEvent_WithItsNameAndLevel()
    {
        var rows = LogEventRows(File.ReadAllText(Path.Combine(RepositoryPaths.Root, "docs", "observability.md")));
        var problems = new List<string>();
        foreach (var (method, log) in Events)
        {
            if (!rows.TryGetValue(log.EventId, out var row))
            {
                problems.Add($"{log.EventId} {log.EventName} is not in the table");
            }
            else if (row.Name != log.EventName || row.Level != log.Level.ToString())
            {
                problems.Add($"{log.EventId} is listed as {row.Name} ({row.Level}), but is {log.EventName} ({log.Level})");
            }
        }

        // A row no event has any more would send an operator looking for a log that never comes.
        problems.AddRange(rows.Keys.Except(Events.Select(e => e.Log.EventId)).Select(id => $"{id} is listed but not in StormLogs"));

        Assert.True(problems.Count == 0, "docs/observability.md, \"Log events\": " + string.Join("; ", problems));
    }

    /// <summary>The "Log events" section's rows <c>| id | `name` | level | meaning |</c>, by EventId.</summary>
    private static Dictionary<int, (string Name, string Level)> LogEventRows(string markdown)
    {
        var start = markdown.IndexOf("\n## Log events", StringComparison.Ordinal);
        Assert.True(start >= 0, "docs/observability.md has no \"## Log events\" section");
        var end = markdown.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var section = end < 0 ? markdown[start..] : markdown[start..end];

        var rows = new Dictionary<int, (string, string)>();
        foreach (Match row in LogEventRow().Matches(section))
        {
            var id = int.Parse(row.Groups["id"].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(rows.TryAdd(id, (row.Groups["name"].Value, row.Groups["level"].Value)), $"EventId {id} is listed twice");
        }

        return rows;
    }

    private static bool IsBuildOutput(string root, string file) =>
        Path.GetRelativePath(root, file).Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj");

    [GeneratedRegex(@"\[\s*(Microsoft\.Extensions\.Logging\.)?LoggerMessage(Attribute)?\b")]
    private static partial Regex LoggerMessageDeclaration();

    [GeneratedRegex(@"^\|\s*(?<id>\d+)\s*\|\s*`(?<name>\w+)`\s*\|\s*(?<level>\w+)\s*\|", RegexOptions.Multiline)]
    private static partial Regex LogEventRow();
}
