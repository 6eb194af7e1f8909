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
}
