using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using ServerlessStorm.Cli.Client;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

/// <summary>
/// storm purge --before DATE: deletes the audit's whole UTC days before DATE (executions that have not finished
/// stay). The API purges for a while per request; this asks again until no expired day is left, showing progress.
/// </summary>
internal static class PurgeCommand
{
    private static readonly string[] Counts = ["executions", "trigger_instances", "rule_enforcements", "payloads", "output_rows", "kept_executions", "days_deleted_whole"];

    public static Command Create()
    {
        var before = new Option<string>("--before")
        {
            Description = "Delete the audit's records of the UTC days before this date (YYYY-MM-DD); the date itself is kept",
            Required = true,
        };
        var json = new Option<bool>("--json") { Description = "Print the totals as JSON" };
        var api = CliOutput.ApiOption();
        var command = new Command("purge", "Delete old audit records: trigger instances, rule enforcements, executions, their payloads and output (unfinished executions stay)")
        {
            before, json, api,
        };
        command.SetAction((r, ct) =>
        {
            var date = r.GetValue(before)!;
            if (!DateOnly.TryParseExact(date, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
            {
                return Task.FromResult(CliOutput.Error($"--before '{date}' is not a date (YYYY-MM-DD)"));
            }

            return CliOutput.WithClientAsync(r.GetValue(api), client => PurgeAsync(client, date, r.GetValue(json), ct));
        });
        return command;
    }

    private static async Task<int> PurgeAsync(StormClient client, string before, bool json, CancellationToken cancellationToken)
    {
        var totals = Counts.ToDictionary(c => c, _ => 0L);
        var days = new List<string>();
        string? fault = null;
        var code = CliOutput.Ok;

        async Task Run(Action<string>? status)
        {
            while (true)
            {
                var request = new JsonObject { ["before"] = before, ["after"] = days.Count > 0 ? days[^1] : null };
                var reply = await client.SendJsonAsync(HttpMethod.Post, "api/v1/audit/purge", request.ToJsonString(), cancellationToken);
                if (!reply.IsSuccess)
                {
                    (fault, code) = (reply.Fault, reply.StatusCode is 401 or 403 ? CliOutput.Failed : CliOutput.InvalidInput);
                    return;
                }

                foreach (var count in Counts)
                {
                    totals[count] += reply.Body?[count]?.GetValue<long>() ?? 0;
                }

                days.AddRange(reply.Body?["days"]?.AsArray().Select(d => d!.GetValue<string>()) ?? []);
                status?.Invoke($"purged {days.Count} day(s) ({(days.Count > 0 ? days[^1] : "none yet")}): {totals["executions"]:N0} execution(s) so far");
                if (reply.Body?["more"]?.GetValue<bool>() != true)
                {
                    return;
                }
            }
        }

        if (Console.IsErrorRedirected || Console.IsOutputRedirected || json)
        {
            await Run(null);
        }
        else
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            await console.Status().StartAsync($"purging the audit before {before}", ctx => Run(text => ctx.Status(text)));
        }

        if (fault is not null)
        {
            return CliOutput.Error(fault, code);
        }

        if (json)
        {
            var result = new JsonObject { ["before"] = before, ["days"] = new JsonArray([.. days.Select(d => (JsonNode)d)]) };
            foreach (var (count, value) in totals)
            {
                result[count] = value;
            }

            Console.WriteLine(CliOutput.Json(result));
            return CliOutput.Ok;
        }

        Console.WriteLine(days.Count == 0
            ? $"Nothing to purge before {before}."
            : $"Purged {days.Count} day(s) before {before} ({days[0]} to {days[^1]})" +
              (totals["days_deleted_whole"] > 0 ? $"; {totals["days_deleted_whole"]:N0} with no unfinished execution deleted whole (every record, not counted)" : "") +
              (totals["days_deleted_whole"] < days.Count
                  ? $"; from the others {totals["executions"]:N0} execution(s), {totals["trigger_instances"]:N0} trigger instance(s), {totals["rule_enforcements"]:N0} rule enforcement(s), {totals["output_rows"]:N0} output row(s)"
                  : "") +
              $"; {totals["payloads"]:N0} payload blob(s)" +
              (totals["kept_executions"] > 0 ? $"; kept {totals["kept_executions"]:N0} unfinished execution(s)." : "."));
        return CliOutput.Ok;
    }
}
