using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

/// <summary>storm inquiry list/get/respond: questions that executions of core.ask are waiting on, as st2 inquiry does.</summary>
internal static class InquiryCommands
{
    private static readonly string[] Columns = ["id", "action", "route", "ttl", "users", "start_timestamp"];

    public static Command Create()
    {
        var listJson = new Option<bool>("--json");
        var listApi = CliOutput.ApiOption();
        var list = new Command("list", "List the inquiries waiting for a response") { listJson, listApi };
        list.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(listApi), async client =>
        {
            var reply = await client.GetAsync("api/v1/inquiries", ct);
            if (!reply.IsSuccess || r.GetValue(listJson))
            {
                return Print(reply);
            }

            var table = new Table().AddColumns(Columns);
            foreach (var inquiry in reply.Body!.AsArray())
            {
                table.AddRow([.. Columns.Select(c => Markup.Escape(inquiry?[c] is JsonArray a ? string.Join(",", a) : inquiry?[c]?.ToString() ?? ""))]);
            }

            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }).Write(table);
            return CliOutput.Ok;
        }));

        var getId = new Argument<string>("ID");
        var getApi = CliOutput.ApiOption();
        var get = new Command("get", "Show an inquiry: its schema, who may respond, its response") { getId, getApi };
        get.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(getApi), async client =>
            Print(await client.GetAsync($"api/v1/inquiries/{Uri.EscapeDataString(r.GetValue(getId)!)}", ct))));

        var respondId = new Argument<string>("ID");
        var data = new Option<string>("--data", "-r") { Description = "The response, a JSON object (e.g. '{\"continue\": true}')", Required = true };
        var respondApi = CliOutput.ApiOption();
        var respond = new Command("respond", "Answer an inquiry as the user of your API key or token; the answer is checked against its schema") { respondId, data, respondApi };
        respond.SetAction((r, ct) =>
        {
            JsonNode? response;
            try
            {
                response = JsonNode.Parse(r.GetValue(data)!);
            }
            catch (JsonException ex)
            {
                return Task.FromResult(CliOutput.Error($"--data is not JSON: {ex.Message}"));
            }

            if (response is not JsonObject)
            {
                return Task.FromResult(CliOutput.Error("--data must be a JSON object, e.g. '{\"continue\": true}'"));
            }

            return CliOutput.WithClientAsync(r.GetValue(respondApi), async client =>
            {
                var body = new JsonObject { ["id"] = r.GetValue(respondId), ["response"] = response };
                return Print(await client.SendJsonAsync(HttpMethod.Put, $"api/v1/inquiries/{Uri.EscapeDataString(r.GetValue(respondId)!)}", body.ToJsonString(), ct));
            });
        });

        return new Command("inquiry", "Answer the questions that executions are waiting on") { list, get, respond };
    }

    private static int Print(Client.ApiReply reply)
    {
        if (!reply.IsSuccess)
        {
            var code = CliOutput.Error(reply.Fault, reply.StatusCode == 404 ? CliOutput.Failed : CliOutput.InvalidInput);
            foreach (var problem in reply.Body?["problems"] as JsonArray ?? [])
            {
                Console.Error.WriteLine($"  - {problem}");
            }

            return code;
        }

        Console.WriteLine(CliOutput.Json(reply.Body));
        return CliOutput.Ok;
    }
}
