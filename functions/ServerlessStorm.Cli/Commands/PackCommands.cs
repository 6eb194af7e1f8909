using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Packs;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

internal static class PackCommands
{
    public static Command Create()
    {
        var directory = new Argument<string>("DIR") { Description = "A folder of packs, or one pack's folder", DefaultValueFactory = _ => "packs" };
        var configs = new Option<string?>("--configs") { Description = "Folder of packs' configs, <pack>.yaml each (default: configs beside the packs folder)" };
        var validate = new Command("validate", "Check every pack file and report all problems with file, line and field") { directory, configs };
        validate.SetAction(result => Validate(result.GetValue(directory)!, result.GetValue(configs)));

        var json = new Option<bool>("--json");
        var api = CliOutput.ApiOption();
        var list = new Command("list", "List the packs the server read: which loaded, what they hold, and why the others were left out") { json, api };
        list.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(api), async client =>
        {
            var reply = await client.GetAsync("api/v1/packs", ct);
            if (!reply.IsSuccess)
            {
                return CliOutput.Error(reply.Fault, CliOutput.InvalidInput);
            }

            if (r.GetValue(json))
            {
                Console.WriteLine(CliOutput.Json(reply.Body));
                return CliOutput.Ok;
            }

            var packs = reply.Body!.AsArray();
            var table = new Table().AddColumns("pack", "version", "status", "actions", "rules", "trigger types", "python");
            foreach (var pack in packs)
            {
                var loaded = pack?["loaded"]?.GetValue<bool>() == true;
                table.AddRow(Markup.Escape(pack?["ref"]?.ToString() ?? ""), Markup.Escape(pack?["version"]?.ToString() ?? ""),
                    loaded ? "loaded" : "[red]left out[/]", $"{pack?["actions"]}", $"{pack?["rules"]}", $"{pack?["trigger_types"]}", PythonState(pack?["python"]));
            }

            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
            console.Write(table);
            foreach (var pack in packs)
            {
                foreach (var (kind, field) in new[] { ("left out", "problems"), ("warning", "warnings") })
                {
                    foreach (var line in pack?[field]?.AsArray() ?? [])
                    {
                        Console.WriteLine($"{pack?["ref"]}: {kind}: {line}");
                    }
                }

                // A left-out pack's problems above already say why its virtualenv is not there.
                if (pack?["loaded"]?.GetValue<bool>() == true && pack?["python"]?["state"]?.ToString() is "missing" or "stale" or "unavailable")
                {
                    Console.WriteLine($"{pack?["ref"]}: python: its virtualenv {pack?["python"]?["reason"]}{(pack?["python"]?["last_error"] is { } error ? $"; the last build failed: {error}" : "")}");
                }
            }

            return CliOutput.Ok;
        }));

        return new Command("pack", "Work with packs") { validate, list, PackInstallCommand.Create() };
    }

    // A pack's Python in one word: host, virtualenv (current), or what is wrong with its virtualenv.
    private static string PythonState(System.Text.Json.Nodes.JsonNode? python) => python?["state"]?.ToString() switch
    {
        null => "",
        "host" => "host",
        "python-host" => "python host",
        "current" => "virtualenv",
        var other => $"[red]{Markup.Escape(other)}[/]",
    };

    private static int Validate(string path, string? configsPath)
    {
        PackLoadResult result;
        try
        {
            // One pack's folder: its configs folder is beside the folder that holds it.
            var packsRoot = File.Exists(Path.Combine(path, "pack.yaml")) ? Path.GetDirectoryName(Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar)) ?? path : path;
            result = Loader(configsPath, packsRoot).LoadFrom(path);
        }
        catch (DirectoryNotFoundException ex)
        {
            return CliOutput.Error(ex.Message);
        }

        foreach (var problem in result.Problems)
        {
            Console.WriteLine(problem);
        }

        foreach (var warning in result.Warnings)
        {
            Console.WriteLine($"warning: {warning}");
        }

        var catalog = result.Catalog;
        var summary = $"{catalog.Packs.Count} pack(s), {catalog.Actions.Count} action(s), {catalog.Rules.Count} rule(s), {catalog.TriggerTypes.Count} trigger type(s)";
        if (result.IsValid)
        {
            Console.WriteLine($"OK: {summary}");
            return CliOutput.Ok;
        }

        Console.Error.WriteLine($"{result.Problems.Count} problem(s) found ({summary} loaded)");
        return CliOutput.Failed;
    }

    /// <summary>A loader as storm serve's: this build's runners and sensor runners, and the packs' configs from the folder.</summary>
    internal static PackLoader Loader(string? configsPath, string packsRoot) => new(Runners())
    {
        Configs = new FolderPackConfigSource(FolderPackConfigSource.Resolve(configsPath, packsRoot)).ReadAll(),
        SensorRunners = SensorRunners(),
    };

    /// <summary>The sensor runners this build has, from the same registrations the engine uses.</summary>
    internal static IReadOnlyList<ServerlessStorm.Engine.Sensors.ISensorRunner> SensorRunners()
    {
        using var services = new ServiceCollection().AddLogging().AddStormEngine().BuildServiceProvider();
        return [.. services.GetServices<ServerlessStorm.Engine.Sensors.ISensorRunner>()];
    }

    /// <summary>The runners this build has, from the same registrations the engine uses.</summary>
    internal static RunnerRegistry Runners()
    {
        using var services = new ServiceCollection().AddLogging().AddStormEngine().BuildServiceProvider();
        return services.GetRequiredService<RunnerRegistry>();
    }
}
