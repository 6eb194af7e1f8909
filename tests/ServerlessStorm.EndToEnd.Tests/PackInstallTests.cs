using System.Diagnostics;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary><c>storm pack install PATH</c> as a user runs it: the pack copied into the packs folder, its virtualenv built by pip offline.</summary>
public sealed class PackInstallTests : IDisposable
{
    private readonly LocalWheels _wheels = new();
    private readonly TempPacks _packs = new();
    private readonly string _work = Path.Combine(Path.GetTempPath(), "storm-install-" + Guid.NewGuid().ToString("N")[..10]);

    public PackInstallTests()
    {
        _wheels.Add("stormdemo", "1.0", "VALUE = 'from the wheel'\n");
        Write("src/demo/pack.yaml", "name: demo\nversion: 1.0.0\ndescription: a pack with Python dependencies\n");
        Write("src/demo/actions/hi.yaml", "name: hi\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: echo hi}\n");
        Write("src/demo/requirements.txt", "stormdemo==1.0\n");
    }

    private string Virtualenvs => Path.Combine(_work, "virtualenvs");

    [Fact]
    public async Task PackInstall_CopiesThePack_AndBuildsItsVirtualenv_ThenAFailingRequirementSaysWhatPipSaid()
    {
        var installed = await Install();

        Assert.True(installed.ExitCode == 0, installed.ToString());
        Assert.Contains("Installed pack 'demo' in", installed.StdOut);
        Assert.Contains("Successfully installed stormdemo-1.0", installed.StdOut);
        Assert.True(File.Exists(Path.Combine(_packs.Root, "demo", "actions", "hi.yaml")));
        var python = Path.Combine(Virtualenvs, "demo", "bin", "python");
        Assert.Contains($"Its virtualenv is built: {python}", installed.StdOut);
        Assert.Equal("from the wheel", RunPython(python, "import stormdemo; print(stormdemo.VALUE)"));

        var again = await Install();
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("Its virtualenv is current", again.StdOut);

        Write("src/demo/requirements.txt", "stormdemo==1.0\nnot-on-this-machine\n");
        var failed = await Install();

        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("pack 'demo': its virtualenv could not be built (the previous one is kept): pip install failed (exit code 1)", failed.StdErr);
        Assert.Contains("No matching distribution found for not-on-this-machine", failed.StdErr);
        Assert.Equal("from the wheel", RunPython(python, "import stormdemo; print(stormdemo.VALUE)"));
    }

    [Fact]
    public async Task PackInstall_APackWithProblems_IsRefusedWithFileAndLine_AndNotCopied()
    {
        Write("src/demo/actions/bad.yaml", "name: bad\nrunner_type: no-such-runner\n");

        var refused = await Install();

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("bad.yaml:2:", refused.StdOut);
        Assert.Contains("is not installed: 1 problem(s) found", refused.StdErr);
        Assert.False(Directory.Exists(Path.Combine(_packs.Root, "demo")));
    }

    [Fact]
    public async Task PackInstall_ChecksThePacksConfig_InTheConfigsFolder_AsServeWillLoadIt()
    {
        Write("src/demo/config.schema.yaml", "region:\n  type: string\n  enum: [eu-west, us-east]\n");
        Write("configs/demo.yaml", "region: mars\n");

        var refused = await Install("--configs", Path.Combine(_work, "configs"));

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("demo.yaml:1:", refused.StdOut);
        Assert.Contains("region", refused.StdOut);
        Assert.False(Directory.Exists(Path.Combine(_packs.Root, "demo")));

        Write("configs/demo.yaml", "region: us-east\n");
        var installed = await Install("--configs", Path.Combine(_work, "configs"));

        Assert.True(installed.ExitCode == 0, installed.ToString());
        Assert.Contains("Installed pack 'demo' in", installed.StdOut);
    }

    private Task<CliResult> Install(params string[] more) => StormProcess.RunAsync(
        ["pack", "install", Path.Combine(_work, "src", "demo"), "--packs", _packs.Root, "--virtualenvs", Virtualenvs, "--no-index", "--find-links", _wheels.Path, .. more]);

    private void Write(string relativePath, string content)
    {
        var path = Path.Combine(_work, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    private static string RunPython(string python, string code)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(code);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? output.Trim() : $"exit {process.ExitCode}: {stderr.Result}";
    }

    public void Dispose()
    {
        _wheels.Dispose();
        _packs.Dispose();
        try
        {
            Directory.Delete(_work, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary><c>storm serve</c> builds packs' missing virtualenvs as it starts, with the pip settings from its configuration.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class ServeVirtualenvTests(AzuriteFixture azurite) : IDisposable
{
    private readonly LocalWheels _wheels = new();
    private readonly TempPacks _packs = new TempPacks().WithPack("needs").WithPack("unbuildable").WithRepositoryCore();
    private readonly string _work = Path.Combine(Path.GetTempPath(), "storm-serve-venvs-" + Guid.NewGuid().ToString("N")[..10]);

    [Fact]
    public async Task Serve_BuildsAMissingVirtualenvAtStart_AndLeavesOutAPackWhoseBuildFails()
    {
        _wheels.Add("stormdemo", "1.0", "VALUE = 1\n");
        _packs.Write("needs/requirements.txt", "stormdemo\n");
        _packs.Write("unbuildable/requirements.txt", "not-on-this-machine\n");
        var environment = new Dictionary<string, string>
        {
            ["Storm__Python__VirtualenvsPath"] = Path.Combine(_work, "virtualenvs"),
            ["Storm__Python__NoIndex"] = "true",
            ["Storm__Python__FindLinks__0"] = _wheels.Path,
        };

        await using var storm = await StormProcess.ServeAsync(environment, "--packs", _packs.Root, "--storage", azurite.ConnectionString, "--audit-journal", Path.Combine(_work, "journal"));
        var listed = await StormProcess.RunAsync("pack", "list", "--json", "--api", storm.Url);

        Assert.True(listed.ExitCode == 0, listed.ToString());
        var packs = System.Text.Json.Nodes.JsonNode.Parse(listed.StdOut)!.AsArray().ToDictionary(p => p!["ref"]!.GetValue<string>(), p => p!);
        Assert.True(packs["needs"]["loaded"]!.GetValue<bool>());
        Assert.Equal("current", packs["needs"]["python"]!["state"]!.GetValue<string>());
        Assert.Equal(Path.Combine(_work, "virtualenvs", "needs", "bin", "python"), packs["needs"]["python"]!["interpreter"]!.GetValue<string>());
        Assert.False(packs["unbuildable"]["loaded"]!.GetValue<bool>());
        Assert.Contains("No matching distribution found for not-on-this-machine", packs["unbuildable"]["problems"]![0]!.GetValue<string>());
        Assert.Contains("warning: pack 'unbuildable' is left out", storm.Output);
        Assert.Contains("The virtualenv of pack needs is built at", storm.Output);
    }

    public void Dispose()
    {
        _wheels.Dispose();
        _packs.Dispose();
        try
        {
            Directory.Delete(_work, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
