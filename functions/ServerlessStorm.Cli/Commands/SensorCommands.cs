using System.CommandLine;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

internal static class SensorCommands
{
    public static Command Create()
    {
        var json = new Option<bool>("--json");
        var api = CliOutput.ApiOption();
        var list = new Command("list", "List the packs' sensors: how each runs, its state, last poll and last error") { json, api };
        list.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(api), async client =>
        {
            var reply = await client.GetAsync("api/v1/sensors", ct);
            if (!reply.IsSuccess)
            {
                return CliOutput.Error(reply.Fault, CliOutput.InvalidInput);
            }

            if (r.GetValue(json))
            {
                Console.WriteLine(CliOutput.Json(reply.Body));
                return CliOutput.Ok;
            }

            var sensors = reply.Body!.AsArray();
            var table = new Table().AddColumns("sensor", "runner", "poll interval", "state", "last poll", "failures", "trigger types");
            foreach (var sensor in sensors)
            {
                var state = sensor?["state"]?.ToString() ?? "";
                table.AddRow(Markup.Escape(sensor?["ref"]?.ToString() ?? ""), Markup.Escape(sensor?["runner"]?.ToString() ?? "-"), $"{sensor?["poll_interval"]} s",
                    state is "failing" or "not-run" or "no-runner" ? $"[red]{Markup.Escape(state)}[/]" : Markup.Escape(state),
                    Markup.Escape(sensor?["last_poll"]?.ToString() ?? "-"), $"{sensor?["consecutive_failures"]}",
                    Markup.Escape(string.Join(", ", sensor?["trigger_types"]?.AsArray().Select(t => t?.ToString()) ?? [])));
            }

            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
            console.Write(table);
            foreach (var sensor in sensors)
            {
                if (sensor?["last_error"]?.ToString() is { Length: > 0 } error)
                {
                    Console.WriteLine($"{sensor?["ref"]}: last error: {error}");
                }
            }

            return CliOutput.Ok;
        }));

        return new Command("sensor", "Work with sensors") { list };
    }
}
