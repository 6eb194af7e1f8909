using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// The log catalogue: alerts and queries key on its EventIds, so they must stay unique and every log must come from it.
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
        var catalogue = Path.Combine(functions, "ServerlessStorm.Engine", "Diagnostics", "StormLogs.cs");
        Assert.True(File.Exists(catalogue), catalogue + " is missing");

        var elsewhere = Directory.EnumerateFiles(functions, "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(functions, f) && f != catalogue && LoggerMessageDeclaration().IsMatch(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(RepositoryPaths.Root, f))
            .ToList();

        Assert.True(elsewhere.Count == 0, "[LoggerMessage] outside StormLogs.cs (move it into the catalogue with a new EventId): " + string.Join(", ", elsewhere));
    }

    private static bool IsBuildOutput(string root, string file) =>
        Path.GetRelativePath(root, file).Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj");

    [GeneratedRegex(@"\[\s*(Microsoft\.Extensions\.Logging\.)?LoggerMessage(Attribute)?\b")]
    private static partial Regex LoggerMessageDeclaration();
}
