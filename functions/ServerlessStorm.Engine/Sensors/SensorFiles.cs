namespace ServerlessStorm.Engine.Sensors;

/// <summary>
/// Files a sensor names by its entry_point: relative to the pack's <c>sensors/</c> folder (as StackStorm resolves a
/// sensor's Python file), and never outside the pack, so a pack cannot point a sensor at any file on the host.
/// </summary>
public static class SensorFiles
{
    public static string SensorsFolder(string packDirectory) => Path.GetFullPath(Path.Combine(packDirectory, "sensors"));

    /// <summary>The full path of <paramref name="relative"/> from the pack's <c>sensors/</c> folder; false when it leaves the pack.</summary>
    public static bool TryResolve(string packDirectory, string relative, out string fullPath)
    {
        var pack = Path.GetFullPath(packDirectory).TrimEnd(Path.DirectorySeparatorChar);
        fullPath = Path.GetFullPath(Path.Combine(SensorsFolder(packDirectory), relative));
        return fullPath.StartsWith(pack + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    /// <summary>Why the entry point cannot be run (a file missing or outside the pack, a C# class that does not load), or null.</summary>
    public static string? Problem(string packDirectory, string entryPoint)
    {
        if (Actions.PackAssemblies.ParseEntryPoint(entryPoint) is not null)
        {
            try
            {
                Actions.PackAssemblies.ResolveSensor(packDirectory, entryPoint);
                return null;
            }
            catch (Actions.PackAssemblyException ex)
            {
                return ex.Message;
            }
        }

        if (!TryResolve(packDirectory, entryPoint, out var path))
        {
            return $"'{entryPoint}' is outside the pack";
        }

        return File.Exists(path) ? null : $"'{entryPoint}' does not exist in {SensorsFolder(packDirectory)}";
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string Path, long Length, DateTime Written), string> Hashes = new();

    /// <summary>
    /// What the sensor's code is now: a hash of the file its entry point names, with the class for an assembly. A
    /// sensor found to be long-running is looked at again once its code changes (rewritten as a PollingSensor).
    /// </summary>
    public static string Fingerprint(string packDirectory, string entryPoint)
    {
        var (relative, typeName) = Actions.PackAssemblies.ParseEntryPoint(entryPoint) ?? (entryPoint, "");
        if (!TryResolve(packDirectory, relative, out var path) || new FileInfo(path) is not { Exists: true } file)
        {
            return "missing";
        }

        // Hashed once per version of the file: schedulers ask every round.
        var hash = Hashes.GetOrAdd((path, file.Length, file.LastWriteTimeUtc), key => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(key.Path))));
        return typeName.Length == 0 ? hash : $"{hash}:{typeName}";
    }
}
