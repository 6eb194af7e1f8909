using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Workflows;

/// <summary>The workflow file an orquesta action names by its entry_point (inside its pack's <c>actions/</c> folder).</summary>
public static class WorkflowFiles
{
    /// <summary>The workflow file's text, or why there is none.</summary>
    public static async Task<(string? Text, string? Error)> ReadAsync(string? packDirectory, string? entryPoint, CancellationToken cancellationToken)
    {
        if (packDirectory is null || entryPoint is null)
        {
            return (null, "an orquesta action needs its pack folder and an entry_point (the workflow file)");
        }

        if (!PackFiles.TryResolve(packDirectory, entryPoint, out var file) || !File.Exists(file))
        {
            return (null, $"workflow file '{entryPoint}' does not exist in the pack's actions folder");
        }

        return (await File.ReadAllTextAsync(file, cancellationToken), null);
    }
}
