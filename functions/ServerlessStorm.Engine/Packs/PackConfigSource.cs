namespace ServerlessStorm.Engine.Packs;

/// <summary>One pack's config file as its source holds it: where it is (as problems name it) and its YAML text.</summary>
public sealed record PackConfigDocument(string Pack, string Location, string Text);

/// <summary>
/// Where packs' configs come from: StackStorm's <c>configs/&lt;pack&gt;.yaml</c>, kept apart from the packs so a pack
/// is shared as it is and each installation brings its own values. A folder beside the packs locally, a Blob
/// container in Azure.
/// </summary>
public interface IPackConfigSource
{
    /// <summary>Every <c>&lt;pack&gt;.yaml</c> the source holds, by pack name.</summary>
    Task<IReadOnlyDictionary<string, PackConfigDocument>> ReadAllAsync(CancellationToken cancellationToken);
}

/// <summary>Configs from a folder (<c>Storm:ConfigsPath</c>, by default <c>configs</c> beside the packs folder); a missing folder holds none.</summary>
public sealed class FolderPackConfigSource(string path) : IPackConfigSource
{
    public string Path { get; } = path;

    /// <summary>The configs folder: as configured, else <c>configs</c> beside the packs folder (StackStorm's layout).</summary>
    public static string Resolve(string? configured, string packsPath) =>
        configured ?? System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(packsPath).TrimEnd(System.IO.Path.DirectorySeparatorChar)) ?? ".", "configs");

    public Task<IReadOnlyDictionary<string, PackConfigDocument>> ReadAllAsync(CancellationToken cancellationToken) => Task.FromResult(ReadAll());

    public override string ToString() => $"folder {PackLoader.Display(Path)}";

    public IReadOnlyDictionary<string, PackConfigDocument> ReadAll()
    {
        var found = new Dictionary<string, PackConfigDocument>(StringComparer.Ordinal);
        if (!Directory.Exists(Path))
        {
            return found;
        }

        foreach (var file in Directory.EnumerateFiles(Path).Order(StringComparer.Ordinal))
        {
            var name = System.IO.Path.GetFileName(file);
            var pack = name.EndsWith(".yaml", StringComparison.Ordinal) ? name[..^5] : name.EndsWith(".yml", StringComparison.Ordinal) ? name[..^4] : null;
            if (pack is null || found.ContainsKey(pack))
            {
                continue;
            }

            found[pack] = new PackConfigDocument(pack, PackLoader.Display(file), File.ReadAllText(file));
        }

        return found;
    }
}
