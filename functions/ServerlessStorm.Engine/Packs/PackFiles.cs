namespace ServerlessStorm.Engine.Packs;

/// <summary>Files an action names by its entry_point: always inside its pack's <c>actions/</c> folder.</summary>
public static class PackFiles
{
    /// <summary>The pack's <c>actions/</c> folder, as a full path.</summary>
    public static string ActionsFolder(string packDirectory) => Path.GetFullPath(Path.Combine(packDirectory, "actions"));

    /// <summary>
    /// The full path of <paramref name="relative"/> under the pack's <c>actions/</c> folder; false when the path
    /// leaves that folder (<c>../</c>, an absolute path), so a pack cannot point an action at any file on the host.
    /// </summary>
    public static bool TryResolve(string packDirectory, string relative, out string fullPath)
    {
        var actions = ActionsFolder(packDirectory);
        fullPath = Path.GetFullPath(Path.Combine(actions, relative));
        return fullPath.StartsWith(actions + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }
}
