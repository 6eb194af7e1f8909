using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Python;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests.Python;

/// <summary>
/// One virtualenv built from a local wheel, shared by the tests that only read it (building one takes seconds): real
/// python, real venv, real pip, offline.
/// </summary>
public sealed class BuiltVirtualenv : IAsyncLifetime, IDisposable
{
    public LocalWheels Wheels { get; } = new();

    public TempPacks Packs { get; } = new();

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "storm-venvs-" + Guid.NewGuid().ToString("N")[..10]);

    public PackDefinition Shared { get; private set; } = null!;

    public VirtualenvOutcome Outcome { get; private set; }

    public PackVirtualEnvironments Environments(bool buildAtStart = false)
    {
        var options = new PythonOptions { VirtualenvsPath = Root, NoIndex = true, BuildVirtualenvsAtStart = buildAtStart };
        options.FindLinks.Add(Wheels.Path);
        return new PackVirtualEnvironments(Options.Create(options), NullLogger<PackVirtualEnvironments>.Instance);
    }

    public PackDefinition Pack(string name, string? requirements)
    {
        Packs.WithPack(name);
        if (requirements is not null)
        {
            Packs.Write($"{name}/requirements.txt", requirements);
        }

        return new PackDefinition(name, "1.0.0", "test pack", Path.Combine(Packs.Root, name));
    }

    public async Task InitializeAsync()
    {
        Wheels.Add("stormdemo", "1.0", "VALUE = 1\n");
        Wheels.Add("stormdemo", "2.0", "VALUE = 2\n");
        Shared = Pack("shared", "stormdemo==1.0\n");
        Outcome = await Environments().EnsureAsync(Shared.Name, Shared.Directory);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        Wheels.Dispose();
        Packs.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Runs <paramref name="python"/> with <c>-c</c> <paramref name="code"/>: its exit code and output.</summary>
    public static (int ExitCode, string Output) RunPython(string python, string code)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(code);
        start.Environment.Remove("PYTHONPATH");
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, (output + stderr.Result).Trim());
    }
}

public sealed class PackVirtualEnvironmentsTests(BuiltVirtualenv built) : IClassFixture<BuiltVirtualenv>
{
    [Fact]
    public async Task APacksRequirementsFromALocalWheel_AreInstalledInItsOwnVirtualenv_WhosePythonImportsThem()
    {
        var environments = built.Environments();

        var python = environments.InterpreterFor(built.Shared);

        Assert.Equal(VirtualenvOutcome.Built, built.Outcome);
        Assert.Equal(Path.Combine(built.Root, "shared", "bin", "python"), python);
        var (exitCode, output) = BuiltVirtualenv.RunPython(python, "import stormdemo, sys; print(stormdemo.VALUE, sys.prefix)");
        Assert.True(exitCode == 0, output);
        Assert.Equal($"1 {Path.Combine(built.Root, "shared")}", output);
        // The host's own interpreter does not have it: the package is the pack's alone.
        Assert.NotEqual(0, BuiltVirtualenv.RunPython(HostPython.Resolve(new PythonOptions()), "import stormdemo").ExitCode);
        var status = environments.Describe("shared", built.Shared.Directory);
        Assert.Equal(PythonEnvironmentState.Current, status.State);
        Assert.Equal(VirtualenvOutcome.AlreadyCurrent, await environments.EnsureAsync("shared", built.Shared.Directory));
    }

    [Fact]
    public async Task APackWithoutRequirements_RunsOnTheHostInterpreter_AndNeedsNoBuild()
    {
        var environments = built.Environments();
        var plain = built.Pack("plain", requirements: null);

        var outcome = await environments.EnsureAsync(plain.Name, plain.Directory);

        Assert.Equal(VirtualenvOutcome.NotNeeded, outcome);
        Assert.Equal(HostPython.Resolve(new PythonOptions()), environments.InterpreterFor(plain));
        Assert.Equal(PythonEnvironmentState.Host, environments.Describe(plain.Name, plain.Directory).State);
        Assert.False(Path.Exists(Path.Combine(built.Root, "plain")));
    }

    [Fact]
    public void InterpreterFor_APackWithRequirementsAndNoVirtualenv_RefusesAndSaysToRunPackInstall()
    {
        var unbuilt = built.Pack("unbuilt", "stormdemo\n");

        var refused = Assert.Throws<PythonEnvironmentException>(() => built.Environments().InterpreterFor(unbuilt));

        Assert.Contains("pack 'unbuilt' has a requirements.txt and its virtualenv is not built", refused.Message);
        Assert.Contains($"storm pack install {unbuilt.Directory}", refused.Message);
    }

    [Fact]
    public async Task ChangedRequirements_MakeItStale_AFailedInstallKeepsTheOldOne_AndAGoodOneIsSwappedIn()
    {
        var pack = built.Pack("changing", "stormdemo==1.0\n");
        // Two processes building at once: one builds, the other waits on the lock and finds it built.
        var both = await Task.WhenAll(built.Environments().EnsureAsync(pack.Name, pack.Directory), built.Environments().EnsureAsync(pack.Name, pack.Directory));
        Assert.Equal([VirtualenvOutcome.AlreadyCurrent, VirtualenvOutcome.Built], both.Order());
        var python = built.Environments().InterpreterFor(pack);

        File.WriteAllText(Path.Combine(pack.Directory, "requirements.txt"), "stormdemo==1.0\nnosuchpackage\n");
        var environments = built.Environments();
        Assert.Equal(PythonEnvironmentState.Stale, environments.Describe(pack.Name, pack.Directory).State);
        var stale = Assert.Throws<PythonEnvironmentException>(() => environments.InterpreterFor(pack));
        Assert.Contains("is stale: it was built from another requirements.txt", stale.Message);
        var failed = await Assert.ThrowsAsync<PythonEnvironmentException>(() => environments.EnsureAsync(pack.Name, pack.Directory));
        Assert.Contains("pack 'changing': its virtualenv could not be built (the previous one is kept): pip install failed (exit code 1)", failed.Message);
        Assert.Contains("No matching distribution found for nosuchpackage", failed.Message);
        Assert.Equal("1", BuiltVirtualenv.RunPython(python, "import stormdemo; print(stormdemo.VALUE)").Output);
        Assert.Contains("No matching distribution found for nosuchpackage", environments.Describe(pack.Name, pack.Directory).LastError);

        File.WriteAllText(Path.Combine(pack.Directory, "requirements.txt"), "stormdemo==2.0\n");
        Assert.Equal(VirtualenvOutcome.Built, await environments.EnsureAsync(pack.Name, pack.Directory));

        Assert.Equal(python, environments.InterpreterFor(pack));
        Assert.Equal("2", BuiltVirtualenv.RunPython(python, "import stormdemo; print(stormdemo.VALUE)").Output);
        Assert.Null(environments.Describe(pack.Name, pack.Directory).LastError);
        // The failed build left nothing behind; the build in use and the one before it are kept.
        Assert.Equal(2, Directory.GetDirectories(Path.Combine(built.Root, ".builds", "changing")).Length);
    }

    [Fact]
    public async Task PipAndTheBuildBackendsItRuns_SeeNoneOfTheHostsSecrets_ButDoSeePipsOwnSettings()
    {
        // A requirement built from source by an in-tree PEP 517 backend that writes the environment it was given and
        // fails (nothing to install): real pip running real build code, offline.
        var pack = built.Pack("probe", "./envprobe\n");
        var dump = Path.Combine(pack.Directory, "environment.txt");
        built.Packs.Write("probe/envprobe/pyproject.toml", "[build-system]\nrequires = []\nbuild-backend = \"probe_backend\"\nbackend-path = [\".\"]\n");
        built.Packs.Write("probe/envprobe/probe_backend.py", $$"""
            import os
            def get_requires_for_build_wheel(config_settings=None):
                with open({{System.Text.Json.JsonSerializer.Serialize(dump)}}, "w") as f:
                    f.write("\n".join(sorted(os.environ)))
                raise RuntimeError("probe done")
            """);
        const string Secret = "STORM_PROBE_CONNECTION_STRING";
        Environment.SetEnvironmentVariable(Secret, "AccountKey=probe-canary");
        Environment.SetEnvironmentVariable("PIP_STORM_PROBE", "kept");
        try
        {
            await Assert.ThrowsAsync<PythonEnvironmentException>(() => built.Environments().EnsureAsync(pack.Name, pack.Directory));
        }
        finally
        {
            Environment.SetEnvironmentVariable(Secret, null);
            Environment.SetEnvironmentVariable("PIP_STORM_PROBE", null);
        }

        var seen = File.ReadAllLines(dump);
        Assert.DoesNotContain(Secret, seen);
        Assert.Contains("PIP_STORM_PROBE", seen);
        Assert.Contains("PATH", seen);
        // Nothing of the test host's own settings (dotnet's, the runner's) came through.
        Assert.DoesNotContain(seen, v => v.StartsWith("DOTNET_", StringComparison.Ordinal) || v.StartsWith("Storm__", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("../outside")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData(".builds")]
    [InlineData("")]
    public async Task APackNameThatIsNotAPlainFolderName_IsRefused_BeforeAnyPathIsMadeFromIt(string name)
    {
        var environments = built.Environments();
        var directory = built.Pack("named", "stormdemo==1.0\n").Directory;

        var fromPath = Assert.Throws<PythonEnvironmentException>(() => environments.PathFor(name));
        Assert.Throws<PythonEnvironmentException>(() => environments.Describe(name, directory));
        await Assert.ThrowsAsync<PythonEnvironmentException>(() => environments.EnsureAsync(name, directory, force: true));

        Assert.Contains("is not a pack name a virtualenv can be built for", fromPath.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(Path.Combine(built.Root, "outside")));
        Assert.False(Path.Exists(Path.Combine(Path.GetDirectoryName(built.Root)!, "outside")));
    }

    [Fact]
    public void LoadingPacks_APackWhoseVirtualenvCannotBeBuilt_IsLeftOutWithPipsReason_AndTheOthersLoad()
    {
        using var packs = new TempPacks().WithPack("fine").WithPack("unbuildable");
        packs.Write("unbuildable/requirements.txt", "nosuchpackage\n");
        var logger = NullLogger.Instance;

        var catalog = StormEngineServices.LoadCatalog(new StormOptions { PacksPath = packs.Root }, RunnerRegistry.Default, logger, python: built.Environments(buildAtStart: true));

        Assert.Contains("fine", catalog.Packs.Keys);
        Assert.DoesNotContain("unbuildable", catalog.Packs.Keys);
        var leftOut = Assert.Single(catalog.LoadReport, p => !p.Loaded);
        Assert.Equal("unbuildable", leftOut.Name);
        var problem = Assert.Single(leftOut.Problems).ToString();
        Assert.Contains("requirements.txt", problem);
        Assert.Contains("No matching distribution found for nosuchpackage", problem);
    }

    [Fact]
    public void LoadingPacks_WithoutBuildingAtStart_LoadsAPackWithAMissingVirtualenv_ThatRefusesToRunUntilBuilt()
    {
        using var packs = new TempPacks().WithPack("later");
        packs.Write("later/requirements.txt", "stormdemo\n");
        var environments = built.Environments();

        var catalog = StormEngineServices.LoadCatalog(new StormOptions { PacksPath = packs.Root }, RunnerRegistry.Default, NullLogger.Instance, python: environments);

        var pack = catalog.Packs["later"];
        Assert.Equal(PythonEnvironmentState.Missing, environments.Describe(pack.Name, pack.Directory).State);
        Assert.Throws<PythonEnvironmentException>(() => environments.InterpreterFor(pack));
    }

    [Fact]
    public void TheEngine_ResolvesPacksVirtualenvs_WhicheverOrderAHostOnlyOneWasTriedIn()
    {
        var before = new ServiceCollection().AddLogging();
        before.TryAddSingleton<IPythonEnvironments, HostOnly>();
        before.AddStormEngine();
        var after = new ServiceCollection().AddLogging().AddStormEngine();
        after.TryAddSingleton<IPythonEnvironments, HostOnly>();

        using var first = before.BuildServiceProvider();
        using var second = after.BuildServiceProvider();

        Assert.IsType<PackVirtualEnvironments>(first.GetRequiredService<IPythonEnvironments>());
        Assert.IsType<PackVirtualEnvironments>(second.GetRequiredService<IPythonEnvironments>());
    }

    [Fact]
    public async Task PackList_ShowsEachPacksPython_HostCurrentOrMissing()
    {
        using var packs = new TempPacks().WithPack("plain").WithPack("shared").WithPack("needs");
        packs.Write("shared/requirements.txt", "stormdemo==1.0\n");
        packs.Write("needs/requirements.txt", "stormdemo\n");
        await using var host = await StormTestHost.StartAsync(new Audit.InMemoryAuditStore(), new Messaging.InMemoryMessageBus(), packs.Root,
            s => s.Configure<PythonOptions>(o => o.VirtualenvsPath = built.Root));

        var listed = (await host.Api.ListPacksAsync(CancellationToken.None)).Body!.AsArray().ToDictionary(p => p!["ref"]!.ToString(), p => p!["python"]!);

        Assert.Equal("host", listed["plain"]["state"]!.ToString());
        Assert.Equal("current", listed["shared"]["state"]!.ToString());
        Assert.Equal(Path.Combine(built.Root, "shared", "bin", "python"), listed["shared"]["interpreter"]!.ToString());
        Assert.Equal("missing", listed["needs"]["state"]!.ToString());
        Assert.Contains("is not built", listed["needs"]["reason"]!.ToString());
    }

    [Fact]
    public async Task PackList_WherePythonRunsOnThePythonHost_SaysSo_RatherThanMissing()
    {
        using var packs = new TempPacks().WithPack("plain").WithPack("needs");
        packs.Write("needs/requirements.txt", "stormdemo\n");
        await using var host = await StormTestHost.StartAsync(new Audit.InMemoryAuditStore(), new Messaging.InMemoryMessageBus(), packs.Root,
            s => s.AddSingleton<IPythonLauncher, RemoteHost>());

        var listed = (await host.Api.ListPacksAsync(CancellationToken.None)).Body!.AsArray().ToDictionary(p => p!["ref"]!.ToString(), p => p!["python"]!);

        Assert.Equal(("python-host", "python-host"), (listed["plain"]["state"]!.ToString(), listed["needs"]["state"]!.ToString()));
        Assert.Contains("installed its requirements.txt when it was deployed", listed["needs"]["reason"]!.ToString());
    }

    // The Function app's launcher as far as the listing cares: the interpreter is the Python host's.
    private sealed class RemoteHost : IPythonLauncher
    {
        public bool ChoosesInterpreter => false;

        public Task<IPythonProcess> StartAsync(PythonLaunch launch, CancellationToken cancellationToken) => throw new NotSupportedException("not started in this test");
    }

    [Fact]
    public void LoadingPacks_OnAHostWithoutPythonThatBuildsNothing_LoadsThemAll_AndTheirPythonSaysThereIsNoInterpreter()
    {
        using var packs = new TempPacks().WithPack("plain").WithPack("needs");
        packs.Write("needs/requirements.txt", "stormdemo\n");
        var options = new PythonOptions { Interpreter = Path.Combine(built.Root, "no-such-python"), VirtualenvsPath = built.Root };
        var environments = new PackVirtualEnvironments(Options.Create(options), NullLogger<PackVirtualEnvironments>.Instance);

        var catalog = StormEngineServices.LoadCatalog(new StormOptions { PacksPath = packs.Root }, RunnerRegistry.Default, NullLogger.Instance, python: environments);

        Assert.All(catalog.LoadReport, p => Assert.True(p.Loaded, p.Name));
        var refused = Assert.Throws<PythonEnvironmentException>(() => environments.InterpreterFor(catalog.Packs["plain"]));
        Assert.Contains("no Python interpreter", refused.Message);
        // The packs' listing still answers (the Function app has no Python; its Python host does).
        var described = environments.Describe("plain", catalog.Packs["plain"].Directory);
        Assert.Equal((PythonEnvironmentState.Host, null), (described.State, described.Interpreter));
        Assert.Contains("which is not here", described.Reason, StringComparison.Ordinal);
    }

    private sealed class HostOnly : IPythonEnvironments
    {
        public string InterpreterFor(PackDefinition pack) => "python3";
    }
}
