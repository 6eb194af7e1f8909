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
            // The ref and state never wrap (a script greps them); the trigger types are in --json.
            var table = new Table().AddColumn(new TableColumn("sensor").NoWrap()).AddColumns("runner", "every")
                .AddColumn(new TableColumn("state").NoWrap()).AddColumns("failures", "last poll (UTC)");
            foreach (var sensor in sensors)
            {
                var state = sensor?["state"]?.ToString() ?? "";
                var lastPoll = DateTimeOffset.TryParse(sensor?["last_poll"]?.ToString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at)
                    ? at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture) : "-";
                table.AddRow(Markup.Escape(sensor?["ref"]?.ToString() ?? ""), Markup.Escape(sensor?["runner"]?.ToString() ?? "-"),
                    sensor?["poll_interval"] is { } every ? $"{every} s" : "its own",
                    state is "failing" or "not-run" or "no-runner" ? $"[red]{Markup.Escape(state)}[/]" : Markup.Escape(state),
                    $"{sensor?["consecutive_failures"]}", lastPoll);
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

        return new Command("sensor", "Work with sensors") { list, Toggle("enable", true), Toggle("disable", false) };
    }

    // st2 sensor enable|disable REF: kept until changed again, whatever the sensor's YAML says.
    private static Command Toggle(string name, bool enabled)
    {
        var sensor = new Argument<string>("REF") { Description = "The sensor's ref, pack.ClassName (storm sensor list shows them)" };
        var api = CliOutput.ApiOption();
        var command = new Command(name, enabled ? "Enable a sensor: it is polled (or run) again" : "Disable a sensor: it is not polled (a long-running one is stopped)")
        {
            sensor, api,
        };
        command.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(api), async client =>
        {
            var reply = await client.SendJsonAsync(HttpMethod.Put, $"api/v1/sensortypes/{Uri.EscapeDataString(r.GetValue(sensor)!)}",
                enabled ? """{"enabled": true}""" : """{"enabled": false}""", ct);
            if (!reply.IsSuccess)
            {
                return CliOutput.Error(reply.Fault, CliOutput.InvalidInput);
            }

            Console.WriteLine($"{reply.Body?["ref"]}: {(enabled ? "enabled" : "disabled")} (state {reply.Body?["state"]})");
            return CliOutput.Ok;
        }));
        return command;
    }
}
