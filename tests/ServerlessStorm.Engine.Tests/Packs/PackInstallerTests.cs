using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests.Packs;

/// <summary>storm pack install's engine part: the pack checked beside the installed packs and their configs, then swapped in whole.</summary>
public sealed class PackInstallerTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "storm-install-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly TempPacks _packs = new();

    private string PacksRoot => _packs.Root;

    private string Configs => Path.Combine(_root, "configs");

    private PackInstaller Installer() =>
        new(new PackLoader(RunnerRegistry.Default) { Configs = new FolderPackConfigSource(Configs).ReadAll() });

    private string Source(string name, string? schema = null, string? folder = null)
    {
        var dir = Path.Combine(_root, "src", folder ?? name);
        Directory.CreateDirectory(Path.Combine(dir, "actions"));
        File.WriteAllText(Path.Combine(dir, "pack.yaml"), $"name: {name}\nversion: 1.0.0\ndescription: test pack\n");
        File.WriteAllText(Path.Combine(dir, "actions", "hello.yaml"), "name: hello\nrunner_type: local-shell-cmd\nparameters:\n  cmd:\n    default: echo hi\n");
        if (schema is not null)
        {
            File.WriteAllText(Path.Combine(dir, "config.schema.yaml"), schema);
        }

        return dir;
    }

    private void Config(string pack, string text)
    {
        Directory.CreateDirectory(Configs);
        File.WriteAllText(Path.Combine(Configs, pack + ".yaml"), text);
    }

    [Fact]
    public void APackWhoseConfigBreaksItsSchema_IsNotInstalled_AndTheProblemNamesTheConfigFileLineAndKey()
    {
        var source = Source("svc", "region:\n  type: string\n  enum: [eu-west, us-east]\n");
        Config("svc", "region: mars\n");

        var result = Installer().Install(source, PacksRoot);

        Assert.False(result.Installed);
        var problem = Assert.Single(result.Problems);
        Assert.EndsWith(Path.Combine("configs", "svc.yaml"), problem.File, StringComparison.Ordinal);
        Assert.Equal((1, "region"), (problem.Position.Line, problem.Field));
        Assert.False(Directory.Exists(Path.Combine(PacksRoot, "svc")));
    }

    [Fact]
    public void AValidPack_IsCopiedIn_WithoutCaches_ThenReplacedWhole_LeavingNothingAside()
    {
        var source = Source("svc", "region:\n  type: string\n  default: eu-west\n");
        Config("svc", "region: us-east\n");
        File.WriteAllText(Path.Combine(source, "actions", "old.txt"), "gone next time");
        Directory.CreateDirectory(Path.Combine(source, "actions", "__pycache__"));
        File.WriteAllText(Path.Combine(source, "actions", "__pycache__", "x.pyc"), "");

        var first = Installer().Install(source, PacksRoot);

        var installed = Path.Combine(PacksRoot, "svc");
        Assert.True(first.Installed);
        Assert.False(first.Replaced);
        Assert.Equal(installed, first.Pack!.Directory);
        Assert.Equal("us-east", first.Pack.Config["region"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(installed, "actions", "old.txt")));
        Assert.False(Directory.Exists(Path.Combine(installed, "actions", "__pycache__")));

        File.Delete(Path.Combine(source, "actions", "old.txt"));
        var second = Installer().Install(source, PacksRoot);

        Assert.True(second.Replaced);
        Assert.False(File.Exists(Path.Combine(installed, "actions", "old.txt")));
        Assert.Empty(Directory.EnumerateDirectories(PacksRoot, ".storm-*"));
    }

    [Fact]
    public void APackFromAFolderNamedOtherThanItsRef_IsInstalledUnderItsRef_AndReplacedThere()
    {
        // A clone of an Exchange pack: stackstorm-svc holds the pack 'svc'.
        var source = Source("svc", folder: "stackstorm-svc");

        var first = Installer().Install(source, PacksRoot);
        var second = Installer().Install(source, PacksRoot);

        Assert.True(first.Installed, string.Join("\n", first.Problems));
        Assert.True(second.Installed, string.Join("\n", second.Problems));
        Assert.True(second.Replaced);
        Assert.Equal(Path.Combine(PacksRoot, "svc"), second.Pack!.Directory);
        Assert.False(Directory.Exists(Path.Combine(PacksRoot, "stackstorm-svc")));
    }

    [Fact]
    public void APackAlreadyInThePacksFolder_IsRegisteredWhereItIs()
    {
        _packs.WithPack("here");

        var result = Installer().Install(Path.Combine(PacksRoot, "here"), PacksRoot);

        Assert.True(result.Installed);
        Assert.False(result.Replaced);
        Assert.Equal(Path.Combine(PacksRoot, "here"), result.Pack!.Directory);
    }

    [Fact]
    public void APackInThePacksFolderUnderAnotherName_WhoseRefIsInstalled_IsRefused_NotLoadedTwice()
    {
        _packs.WithPack("svc");
        _packs.Write("svc-dev/pack.yaml", "name: svc\nversion: 2.0.0\ndescription: a second copy\n");

        var result = Installer().Install(Path.Combine(PacksRoot, "svc-dev"), PacksRoot);

        Assert.False(result.Installed);
        Assert.Contains("pack 'svc' is already installed in", Assert.Single(result.Problems).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ALinkToAFolderAboveIt_IsCopiedAsALink_NotFollowedForever()
    {
        var source = Source("svc");
        Directory.CreateSymbolicLink(Path.Combine(source, "actions", "loop"), source);

        var result = Installer().Install(source, PacksRoot);

        Assert.True(result.Installed, string.Join("\n", result.Problems));
        Assert.Equal(source, new DirectoryInfo(Path.Combine(PacksRoot, "svc", "actions", "loop")).LinkTarget);
    }

    [Fact]
    public void AnInstallStoppedBetweenItsRenames_GetsTheOldCopyBack()
    {
        _packs.WithPack("svc");
        Directory.Move(Path.Combine(PacksRoot, "svc"), Path.Combine(PacksRoot, ".storm-replaced-svc-1a2b3c4d"));

        PackInstaller.RecoverInterrupted(PacksRoot);

        Assert.True(File.Exists(Path.Combine(PacksRoot, "svc", "pack.yaml")));
        Assert.Empty(Directory.EnumerateDirectories(PacksRoot, ".storm-*"));
    }

    [Fact]
    public void AFolderWithoutPackYaml_IsRefused_SayingSo()
    {
        Directory.CreateDirectory(Path.Combine(_root, "empty"));

        var error = Assert.Throws<ArgumentException>(() => Installer().Install(Path.Combine(_root, "empty"), PacksRoot));

        Assert.StartsWith($"'{Path.Combine(_root, "empty")}' is not a pack: it has no pack.yaml", error.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _packs.Dispose();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }
}
