namespace ServerlessStorm.Engine.Packs;

/// <summary>What <see cref="PackInstaller.Install"/> did: the pack where it now lies, or the problems that kept it out.</summary>
/// <param name="Pack">The pack as loaded from its new place; null when it was refused.</param>
/// <param name="Problems">The pack's own problems (its files, and its config), each with file and line.</param>
/// <param name="Replaced">Whether a pack of the same name was there before and was replaced.</param>
public sealed record PackInstallResult(PackDefinition? Pack, IReadOnlyList<PackProblem> Problems, bool Replaced)
{
    public bool Installed => Pack is not null;
}

/// <summary>
/// Puts a pack from a folder into the packs folder, as <c>st2 pack install</c> does for a local pack: it is checked
/// beside the packs it will live with (their actions and trigger types are its to use, and its config is the one the
/// packs folder's configs hold), then copied aside and moved in, so a half-copied pack is never in the packs folder.
/// A pack already in the packs folder is registered where it is.
/// </summary>
public sealed class PackInstaller(PackLoader loader)
{
    /// <exception cref="ArgumentException"><paramref name="source"/> has no pack.yaml.</exception>
    public PackInstallResult Install(string source, string packsRoot)
    {
        var from = Path.GetFullPath(source).TrimEnd(Path.DirectorySeparatorChar);
        if (!File.Exists(Path.Combine(from, "pack.yaml")))
        {
            throw new ArgumentException($"'{source}' is not a pack: it has no pack.yaml", nameof(source));
        }

        packsRoot = Path.GetFullPath(packsRoot).TrimEnd(Path.DirectorySeparatorChar);
        Directory.CreateDirectory(packsRoot);
        RecoverInterrupted(packsRoot);

        // The installed copy of the same pack is left out (it lies in the folder named by its ref, or is the same
        // folder): the new one is checked in its stead.
        var packRef = PackLoader.ReadRef(from);
        List<string> directories = [.. PackLoader.FindPackDirectories(packsRoot).Select(Path.GetFullPath)
            .Where(d => d != from && (packRef is null ? Path.GetFileName(d) != Path.GetFileName(from) : Path.GetFileName(d) != packRef && PackLoader.ReadRef(d) != packRef)), from];
        var result = loader.Load(directories);
        var own = result.Problems.Where(p => Concerns(p.File, from) || (p.AlsoConcerns is { } file && Concerns(file, from))).ToList();
        var pack = result.Catalog.Packs.Values.FirstOrDefault(p => Path.GetFullPath(p.Directory).TrimEnd(Path.DirectorySeparatorChar) == from);
        if (own.Count > 0 || pack is null)
        {
            return new PackInstallResult(null, own, Replaced: false);
        }

        if (Path.GetDirectoryName(from) == packsRoot)
        {
            // Registered where it is, unless another folder there holds the same pack: both would load.
            var other = Path.Combine(packsRoot, pack.Name);
            if (other != from && Directory.Exists(other))
            {
                return new PackInstallResult(null, [new PackProblem(PackLoader.Display(Path.Combine(from, "pack.yaml")), new Yaml.SourcePosition(1, 1), "ref",
                    $"pack '{pack.Name}' is already installed in {PackLoader.Display(other)}: remove one of the two folders")], Replaced: false);
            }

            return new PackInstallResult(pack, [], Replaced: false);
        }

        var destination = Path.Combine(packsRoot, pack.Name);
        var replaced = Replace(from, destination, packsRoot);
        return new PackInstallResult(pack with { Directory = destination }, [], replaced);
    }

    /// <summary>
    /// An install stopped between its two renames (the process killed) leaves the old copy aside and none in place:
    /// it is put back, so the pack is never lost.
    /// </summary>
    public static void RecoverInterrupted(string packsRoot)
    {
        foreach (var aside in Directory.EnumerateDirectories(packsRoot, ".storm-replaced-*"))
        {
            // .storm-replaced-<pack>-<id>
            var name = Path.GetFileName(aside)[".storm-replaced-".Length..];
            var pack = name[..Math.Max(0, name.LastIndexOf('-'))];
            var place = Path.Combine(packsRoot, pack);
            if (pack.Length > 0 && !Directory.Exists(place))
            {
                Directory.Move(aside, place);
            }
        }
    }

    private static bool Concerns(string file, string packFolder) =>
        Path.GetFullPath(file).StartsWith(packFolder + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    // Copies the pack into a hidden folder inside the packs folder (the same file system, so the swap is two renames;
    // loaders pass hidden folders over), then swaps it in; a failed swap puts the old copy back.
    private static bool Replace(string from, string destination, string packsRoot)
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        var staged = Path.Combine(packsRoot, $".storm-install-{Path.GetFileName(destination)}-{id}");
        var old = Path.Combine(packsRoot, $".storm-replaced-{Path.GetFileName(destination)}-{id}");
        try
        {
            Copy(from, staged);
        }
        catch
        {
            DeleteQuietly(staged);
            throw;
        }

        var replaced = Directory.Exists(destination);
        if (replaced)
        {
            Directory.Move(destination, old);
        }

        try
        {
            Directory.Move(staged, destination);
        }
        catch
        {
            if (replaced)
            {
                Directory.Move(old, destination);
            }

            DeleteQuietly(staged);
            throw;
        }

        if (replaced)
        {
            DeleteQuietly(old);
        }

        return replaced;
    }

    private static void DeleteQuietly(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // A leftover hidden folder is passed over by loaders; the install itself is done (or undone).
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    // What a pack's folder holds, without its version control or Python's bytecode caches.
    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var directory in Directory.EnumerateDirectories(from).Where(d => Path.GetFileName(d) is not (".git" or "__pycache__")))
        {
            var target = Path.Combine(to, Path.GetFileName(directory));
            if (new DirectoryInfo(directory).LinkTarget is { } link)
            {
                // A link stays a link: followed, a link to a folder above would copy without end.
                Directory.CreateSymbolicLink(target, link);
                continue;
            }

            Copy(directory, target);
        }
    }
}
