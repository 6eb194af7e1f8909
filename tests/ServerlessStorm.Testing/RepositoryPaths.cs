namespace ServerlessStorm.Testing;

/// <summary>Folders of the repository the tests run from.</summary>
public static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string Packs => Path.Combine(Root, "packs");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ServerlessStorm.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("the tests must run inside the repository (ServerlessStorm.sln not found above " + AppContext.BaseDirectory + ")");
    }
}

/// <summary>A temporary folder of pack files written by a test, deleted afterwards.</summary>
public sealed class TempPacks : IDisposable
{
    public TempPacks()
    {
        Root = Path.Combine(Path.GetTempPath(), "storm-packs-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Root);
        CopyDirectory(Path.Combine(RepositoryPaths.Packs, "core"), Path.Combine(Root, "core"));
    }

    public string Root { get; }

    /// <summary>Writes <paramref name="content"/> to <paramref name="relativePath"/> below the root and returns the full path.</summary>
    public string Write(string relativePath, string content)
    {
        var path = Path.Combine(Root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    public TempPacks WithPack(string name)
    {
        Write($"{name}/pack.yaml", $"name: {name}\nversion: 1.0.0\ndescription: test pack\n");
        return this;
    }

    /// <summary>A copy of the repository's core pack, whose trigger types and actions other packs use.</summary>
    public TempPacks WithRepositoryCore()
    {
        var core = Path.Combine(RepositoryPaths.Packs, "core");
        foreach (var file in Directory.EnumerateFiles(core, "*", SearchOption.AllDirectories))
        {
            Write(Path.Combine("core", Path.GetRelativePath(core, file)), File.ReadAllText(file));
        }

        return this;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
