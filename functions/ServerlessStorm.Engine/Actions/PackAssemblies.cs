using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Loader;
using ServerlessStorm.ActionSdk;

namespace ServerlessStorm.Engine.Actions;

/// <summary>A C# action's entry point could not be loaded; the message says why.</summary>
public sealed class PackAssemblyException(string message) : Exception(message);

/// <summary>
/// Loads the assemblies of C# actions and sensors, each pack folder in a load context of its own. What the host has — the
/// action contract, the engine, the framework, every assembly already loaded — always comes from the host: a pack
/// cannot swap in its own copy of one. A pack that ships a copy of a ServerlessStorm assembly is refused outright,
/// so that mistake is seen at once; its own other dependencies load from its folder.
/// </summary>
public static class PackAssemblies
{
    private static readonly ConcurrentDictionary<string, PackLoadContext> Contexts = new(StringComparer.Ordinal);

    /// <summary>Splits <c>path/To.dll:Namespace.Class</c>; null when the entry point does not have that shape.</summary>
    public static (string AssemblyPath, string TypeName)? ParseEntryPoint(string entryPoint)
    {
        var colon = entryPoint.LastIndexOf(':');
        return colon > 0 && colon < entryPoint.Length - 1 && entryPoint[..colon].EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? (entryPoint[..colon], entryPoint[(colon + 1)..])
            : null;
    }

    /// <summary>The action class named by <paramref name="entryPoint"/> in the pack's <c>actions/</c> folder; throws <see cref="PackAssemblyException"/>.</summary>
    public static Type ResolveAction(string packDirectory, string entryPoint)
    {
        var (relative, typeName) = ParseEntryPoint(entryPoint)
            ?? throw new PackAssemblyException($"entry_point '{entryPoint}' is not 'path/To.dll:Namespace.ClassName'");
        if (!Packs.PackFiles.TryResolve(packDirectory, relative, out var path))
        {
            throw new PackAssemblyException($"'{relative}' is outside the pack's actions folder");
        }

        if (!File.Exists(path))
        {
            throw new PackAssemblyException($"assembly '{relative}' does not exist in {Packs.PackFiles.ActionsFolder(packDirectory)} (build the pack's project first)");
        }

        var type = LoadType(path, relative, typeName);
        if (!type.IsPublic || type.IsAbstract || !typeof(IStormAction).IsAssignableFrom(type) || type.GetConstructor(Type.EmptyTypes) is null)
        {
            throw new PackAssemblyException($"'{typeName}' must be a public, non-abstract class with a parameterless constructor that implements {nameof(IStormAction)}");
        }

        return type;
    }

    /// <summary>
    /// The sensor class named by <paramref name="entryPoint"/>, relative to the pack's <c>sensors/</c> folder and
    /// anywhere inside the pack (so one assembly under <c>actions/</c> can hold a pack's actions and sensors); throws
    /// <see cref="PackAssemblyException"/>.
    /// </summary>
    public static Type ResolveSensor(string packDirectory, string entryPoint)
    {
        var (relative, typeName) = ParseEntryPoint(entryPoint)
            ?? throw new PackAssemblyException($"entry_point '{entryPoint}' is not 'path/To.dll:Namespace.ClassName'");
        if (!Sensors.SensorFiles.TryResolve(packDirectory, relative, out var path))
        {
            throw new PackAssemblyException($"'{relative}' is outside the pack");
        }

        if (!File.Exists(path))
        {
            throw new PackAssemblyException($"assembly '{relative}' does not exist in {Sensors.SensorFiles.SensorsFolder(packDirectory)} (build the pack's project first)");
        }

        var type = LoadType(path, relative, typeName);
        if (!type.IsPublic || type.IsAbstract || type.GetConstructor(Type.EmptyTypes) is null
            || !(typeof(IStormPollingSensor).IsAssignableFrom(type) || typeof(IStormSensor).IsAssignableFrom(type)))
        {
            throw new PackAssemblyException($"'{typeName}' must be a public, non-abstract class with a parameterless constructor that implements {nameof(IStormPollingSensor)} or {nameof(IStormSensor)}");
        }

        return type;
    }

    private static Type LoadType(string path, string relative, string typeName)
    {
        var folder = Path.GetDirectoryName(path)!;
        foreach (var shipped in Directory.EnumerateFiles(folder, "*.dll"))
        {
            if (SimpleName(shipped)?.StartsWith("ServerlessStorm.", StringComparison.Ordinal) == true)
            {
                throw new PackAssemblyException($"the pack ships {Path.GetFileName(shipped)}, an assembly of the host's own; remove it (reference it with Private=\"false\")");
            }
        }

        var context = Contexts.GetOrAdd(folder, f => new PackLoadContext(f));
        Assembly assembly;
        try
        {
            assembly = context.LoadFromAssemblyPath(path);
        }
        catch (BadImageFormatException ex)
        {
            throw new PackAssemblyException($"'{relative}' is not a .NET assembly: {ex.Message}");
        }

        return assembly.GetType(typeName, throwOnError: false)
            ?? throw new PackAssemblyException($"'{relative}' has no class '{typeName}'");
    }

    // Null for a native library, which cannot be one of the host's .NET assemblies.
    private static string? SimpleName(string path)
    {
        try
        {
            return AssemblyName.GetAssemblyName(path).Name;
        }
        catch (BadImageFormatException)
        {
            return null;
        }
    }

    // The contract, the engine and whatever the host already runs on.
    private static bool IsHostAssembly(AssemblyName name) =>
        name.Name is { } simple && (simple.StartsWith("ServerlessStorm.", StringComparison.Ordinal)
            || AssemblyLoadContext.Default.Assemblies.Any(a => string.Equals(a.GetName().Name, simple, StringComparison.OrdinalIgnoreCase))
            || File.Exists(Path.Combine(AppContext.BaseDirectory, simple + ".dll"))
            || File.Exists(Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, simple + ".dll")));

    private sealed class PackLoadContext(string folder) : AssemblyLoadContext($"pack:{folder}")
    {
        protected override Assembly? Load(AssemblyName name)
        {
            if (IsHostAssembly(name))
            {
                return null; // from the host's context
            }

            var candidate = Path.Combine(folder, name.Name + ".dll");
            return File.Exists(candidate) ? LoadFromAssemblyPath(candidate) : null;
        }
    }
}
