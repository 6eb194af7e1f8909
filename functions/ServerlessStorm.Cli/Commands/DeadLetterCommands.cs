using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

/// <summary>storm dead-letter list/replay: what the bus gave up on, and putting it back.</summary>
internal static class DeadLetterCommands
{
    private static readonly string[] Columns = ["queue", "id", "deliveries", "dead_lettered_at", "reason"];

    public static Command Create()
    {
        Option<string?> Queue() => new("--queue") { Description = "trigger-instances or action-executions (both when left out)" };

        var listQueue = Queue();
        var limit = new Option<int>("--limit", "-n") { Description = "At most this many per queue", DefaultValueFactory = _ => 100 };
        var json = new Option<bool>("--json");
        var listApi = CliOutput.ApiOption();
        var list = new Command("list", "List dead-lettered messages with the reason") { listQueue, limit, json, listApi };
        list.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(listApi), async client =>
        {
            var query = $"limit={r.GetValue(limit)}" + (r.GetValue(listQueue) is { } q ? $"&queue={Uri.EscapeDataString(q)}" : "");
            var reply = await client.GetAsync($"api/v1/deadletters?{query}", ct);
            if (!reply.IsSuccess)
            {
                return CliOutput.Error(reply.Fault, CliOutput.InvalidInput);
            }

            if (r.GetValue(json))
            {
                Console.WriteLine(CliOutput.Json(reply.Body));
                return CliOutput.Ok;
            }

            var letters = reply.Body!.AsArray();
            if (letters.Count == 0)
            {
                Console.WriteLine("No dead-lettered messages.");
                return CliOutput.Ok;
            }

            var table = new Table().AddColumns(Columns);
            foreach (var letter in letters)
            {
                table.AddRow([.. Columns.Select(c => Markup.Escape(letter?[c]?.ToString() ?? ""))]);
            }

            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }).Write(table);
            return CliOutput.Ok;
        }));

        var id = new Argument<string?>("ID") { Description = "The trigger instance or execution id to replay", Arity = ArgumentArity.ZeroOrOne };
        var all = new Option<bool>("--all") { Description = "Replay every dead-lettered message" };
        var replayQueue = Queue();
        var replayApi = CliOutput.ApiOption();
        var replay = new Command("replay", "Put dead-lettered messages back on their queue (work already done is not done again)") { id, all, replayQueue, replayApi };
        replay.SetAction((r, ct) =>
        {
            var which = r.GetValue(id);
            if ((which is null) == !r.GetValue(all))
            {
                return Task.FromResult(CliOutput.Error("name one ID, or --all", CliOutput.InvalidInput));
            }

            return CliOutput.WithClientAsync(r.GetValue(replayApi), async client =>
            {
                var body = new JsonObject { ["id"] = which, ["all"] = which is null, ["queue"] = r.GetValue(replayQueue) };
                var reply = await client.SendJsonAsync(HttpMethod.Post, "api/v1/deadletters/replay", body.ToJsonString(), ct);
                if (!reply.IsSuccess)
                {
                    return CliOutput.Error(reply.Fault, reply.StatusCode == 404 ? CliOutput.Failed : CliOutput.InvalidInput);
                }

                Console.WriteLine($"Replayed {reply.Body?["replayed"]} message(s).");
                return CliOutput.Ok;
            });
        });

        return new Command("dead-letter", "See and replay messages the bus gave up on") { list, replay };
    }
}
