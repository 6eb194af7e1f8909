using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Python;

namespace ServerlessStorm.Cli.Commands;

/// <summary>
/// <c>storm pack install PATH</c>: StackStorm's <c>st2 pack install</c> for a pack on this machine. The pack is checked,
/// copied into the packs folder (or taken where it is when it already lies there), and its virtualenv is built from its
/// requirements.txt. <c>--force</c> rebuilds a virtualenv that is current (StackStorm's <c>packs.setup_virtualenv</c>).
/// </summary>
internal static class PackInstallCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("PATH") { Description = "The pack's folder (with its pack.yaml)" };
        var packs = new Option<string>("--packs") { Description = "The packs folder to install into (storm serve's --packs)", DefaultValueFactory = _ => "packs" };
        var configs = new Option<string?>("--configs") { Description = "Folder of packs' configs, <pack>.yaml each, the pack's config is checked against (default: configs beside the packs folder)" };
        var virtualenvs = new Option<string?>("--virtualenvs")
        {
            Description = $"Where packs' virtualenvs live (default Storm__Python__VirtualenvsPath or {PythonOptions.DefaultVirtualenvsPath})",
        };
        var force = new Option<bool>("--force") { Description = "Rebuild the virtualenv even when it is current" };
        var indexUrl = new Option<string?>("--index-url") { Description = "pip's package index (a private one)" };
        var findLinks = new Option<string[]>("--find-links") { Description = "A folder of wheels (or a page of links) pip installs from", AllowMultipleArgumentsPerToken = false };
        var noIndex = new Option<bool>("--no-index") { Description = "Install only from --find-links, without a package index" };
        var install = new Command("install", "Install a pack from a folder into the packs folder and build its virtualenv from its requirements.txt")
        {
            path, packs, configs, virtualenvs, force, indexUrl, findLinks, noIndex,
        };
        install.SetAction((r, ct) =>
        {
            // The same settings storm serve reads (Storm__Python__* in the environment), then the options given here.
            var options = new PythonOptions();
            new ConfigurationBuilder().AddEnvironmentVariables().Build().GetSection(PythonOptions.Section).Bind(options);
            options.VirtualenvsPath = r.GetValue(virtualenvs) ?? options.VirtualenvsPath;
            options.IndexUrl = r.GetValue(indexUrl) ?? options.IndexUrl;
            options.NoIndex |= r.GetValue(noIndex);
            foreach (var links in r.GetValue(findLinks) ?? [])
            {
                options.FindLinks.Add(links);
            }

            return InstallAsync(r.GetValue(path)!, r.GetValue(packs)!, r.GetValue(configs), options, r.GetValue(force), ct);
        });
        return install;
    }

    private static async Task<int> InstallAsync(string source, string packsPath, string? configsPath, PythonOptions options, bool force, CancellationToken cancellationToken)
    {
        PackInstallResult installed;
        try
        {
            installed = new PackInstaller(PackCommands.Loader(configsPath, packsPath)).Install(source, packsPath);
        }
        catch (ArgumentException ex)
        {
            return CliOutput.Error(ex.Message);
        }

        if (installed.Pack is not { } pack)
        {
            foreach (var problem in installed.Problems)
            {
                Console.WriteLine(problem);
            }

            return CliOutput.Error($"pack '{source}' is not installed: {installed.Problems.Count} problem(s) found", CliOutput.Failed);
        }

        var destination = pack.Directory;
        Console.WriteLine($"{(installed.Replaced ? "Replaced" : "Installed")} pack '{pack.Name}' in {PackLoader.Display(destination)}");
        var environments = new PackVirtualEnvironments(Options.Create(options), NullLogger<PackVirtualEnvironments>.Instance);
        VirtualenvOutcome outcome;
        try
        {
            if (File.Exists(Path.Combine(destination, PackVirtualEnvironments.RequirementsFile)))
            {
                Console.WriteLine($"Building its virtualenv in {PackLoader.Display(environments.PathFor(pack.Name))} from requirements.txt:");
            }

            outcome = await environments.EnsureAsync(pack.Name, destination, force, new LineWriter(line => Console.WriteLine("  " + line)), cancellationToken);
        }
        catch (PythonEnvironmentException ex)
        {
            return CliOutput.Error($"{ex.Message}{Environment.NewLine}The pack's files are installed; once its requirements.txt is fixed, run storm pack install again.", CliOutput.Failed);
        }

        Console.WriteLine(outcome switch
        {
            VirtualenvOutcome.NotNeeded => "It has no requirements.txt: its Python runs on the host's interpreter, nothing to build.",
            VirtualenvOutcome.AlreadyCurrent => $"Its virtualenv is current: {environments.Describe(pack.Name, destination).Reason} (--force rebuilds it).",
            _ => $"Its virtualenv is built: {environments.InterpreterFor(pack)}",
        });
        Console.WriteLine("A running storm serve loads the pack at its next start.");
        return CliOutput.Ok;
    }

    // Writes each line as it comes, in order (Progress<T> would post them to the thread pool).
    private sealed class LineWriter(Action<string> write) : IProgress<string>
    {
        public void Report(string value)
        {
            lock (this)
            {
                write(value);
            }
        }
    }
}
