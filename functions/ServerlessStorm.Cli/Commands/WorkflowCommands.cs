using System.CommandLine;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Workflows;

namespace ServerlessStorm.Cli.Commands;

/// <summary>storm workflow inspect: checks an Orquesta workflow file and reports every problem at once.</summary>
internal static class WorkflowCommands
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "An Orquesta workflow file (version 1.0)" };
        var packs = new Option<string>("--packs") { Description = "The packs whose actions the workflow may call", DefaultValueFactory = _ => "packs" };
        var inspect = new Command("inspect", "Check a workflow: fields, expressions, transitions, actions, unreachable tasks, joins") { file, packs };
        inspect.SetAction(result => Inspect(result.GetValue(file)!, result.GetValue(packs)!));
        return new Command("workflow", "Work with Orquesta workflows") { inspect };
    }

    private static int Inspect(string path, string packsPath)
    {
        if (!File.Exists(path))
        {
            return CliOutput.Error($"'{path}' does not exist");
        }

        // Actions are checked against the packs when they load; without them, that one check is skipped (and said so).
        Func<string, bool>? actionExists = null;
        if (Directory.Exists(packsPath))
        {
            var catalog = new PackLoader(PackCommands.Runners()).LoadFrom(packsPath).Catalog;
            actionExists = catalog.Actions.ContainsKey;
        }
        else
        {
            Console.Error.WriteLine($"note: no packs at '{packsPath}', so action refs are not checked");
        }

        var (workflow, problems) = WorkflowLoader.Load(path, path, actionExists);
        foreach (var problem in problems)
        {
            Console.WriteLine(problem);
        }

        if (problems.Count > 0)
        {
            Console.Error.WriteLine($"{problems.Count} problem(s) found");
            return CliOutput.Failed;
        }

        Console.WriteLine($"OK: {workflow!.Tasks.Count} task(s), starting at {string.Join(", ", workflow.StartTasks)}");
        return CliOutput.Ok;
    }
}
