using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Cli.Commands;

internal static class PackCommands
{
    public static Command Create()
    {
        var directory = new Argument<string>("DIR") { Description = "A folder of packs, or one pack's folder", DefaultValueFactory = _ => "packs" };
        var validate = new Command("validate", "Check every pack file and report all problems with file, line and field") { directory };
        validate.SetAction(result => Validate(result.GetValue(directory)!));
        return new Command("pack", "Work with packs") { validate };
    }

    private static int Validate(string path)
    {
        PackLoadResult result;
        try
        {
            result = new PackLoader(Runners()).LoadFrom(path);
        }
        catch (DirectoryNotFoundException ex)
        {
            return CliOutput.Error(ex.Message);
        }

        foreach (var problem in result.Problems)
        {
            Console.WriteLine(problem);
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

    /// <summary>The runners this build has, from the same registrations the engine uses.</summary>
    internal static RunnerRegistry Runners()
    {
        using var services = new ServiceCollection().AddStormEngine().BuildServiceProvider();
        return services.GetRequiredService<RunnerRegistry>();
    }
}
