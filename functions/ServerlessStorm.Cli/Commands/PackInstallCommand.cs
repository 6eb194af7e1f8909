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
            path, packs, virtualenvs, force, indexUrl, findLinks, noIndex,
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

            return InstallAsync(r.GetValue(path)!, r.GetValue(packs)!, options, r.GetValue(force), ct);
        });
        return install;
    }

    private static async Task<int> InstallAsync(string source, string packsPath, PythonOptions options, bool force, CancellationToken cancellationToken)
    {
        var from = Path.GetFullPath(source).TrimEnd(Path.DirectorySeparatorChar);
        if (!File.Exists(Path.Combine(from, "pack.yaml")))
        {
            return CliOutput.Error($"'{source}' is not a pack: it has no pack.yaml");
        }

        var packsRoot = Path.GetFullPath(packsPath).TrimEnd(Path.DirectorySeparatorChar);
        Directory.CreateDirectory(packsRoot);

        // Checked beside the packs it will live with (their actions and trigger types are its to use), in its place.
        var loader = new PackLoader(PackCommands.Runners());
        List<string> directories = [.. PackLoader.FindPackDirectories(packsRoot).Select(Path.GetFullPath).Where(d => Path.GetFileName(d) != Path.GetFileName(from) && d != from), from];
        var result = loader.Load(directories);
        var own = result.Problems.Where(p => Path.GetFullPath(p.File).StartsWith(from + Path.DirectorySeparatorChar, StringComparison.Ordinal)).ToList();
        var pack = result.Catalog.Packs.Values.FirstOrDefault(p => Path.GetFullPath(p.Directory).TrimEnd(Path.DirectorySeparatorChar) == from);
        if (own.Count > 0 || pack is null)
        {
            foreach (var problem in own)
            {
                Console.WriteLine(problem);
            }

            return CliOutput.Error($"pack '{source}' is not installed: {own.Count} problem(s) found", CliOutput.Failed);
        }

        var destination = Path.Combine(packsRoot, pack.Name);
        if (Path.GetDirectoryName(from) == packsRoot)
        {
            // Already in the packs folder: registered where it is.
            destination = from;
        }
        else
        {
            Replace(from, destination, packsRoot);
        }

        Console.WriteLine($"Installed pack '{pack.Name}' in {PackLoader.Display(destination)}");
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
            _ => $"Its virtualenv is built: {environments.InterpreterFor(pack with { Directory = destination })}",
        });
        Console.WriteLine("A running storm serve loads the pack at its next start.");
        return CliOutput.Ok;
    }

    // Copies the pack beside the packs folder first, then moves it in: a half-copied pack is never in the packs folder.
    private static void Replace(string from, string destination, string packsRoot)
    {
        var parent = Path.GetDirectoryName(packsRoot)!;
        var id = Guid.NewGuid().ToString("N")[..8];
        var staged = Path.Combine(parent, $".storm-install-{Path.GetFileName(destination)}-{id}");
        Copy(from, staged);
        var old = Path.Combine(parent, $".storm-replaced-{Path.GetFileName(destination)}-{id}");
        if (Directory.Exists(destination))
        {
            Directory.Move(destination, old);
        }

        Directory.Move(staged, destination);
        if (Directory.Exists(old))
        {
            Directory.Delete(old, recursive: true);
        }
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var directory in Directory.EnumerateDirectories(from).Where(d => Path.GetFileName(d) is not (".git" or "__pycache__")))
        {
            Copy(directory, Path.Combine(to, Path.GetFileName(directory)));
        }
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
