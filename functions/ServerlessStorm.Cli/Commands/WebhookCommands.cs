using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ServerlessStorm.Cli.Commands;

internal static class WebhookCommands
{
    public static Command Create()
    {
        var hook = new Argument<string>("HOOK") { Description = "The hook name (a rule's trigger.parameters.url)" };
        var data = new Option<string>("--data", "-d") { Description = "The JSON body to send", Required = true };
        var headers = new Option<string[]>("--header", "-H") { Description = "Extra header as Name=Value (repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var api = CliOutput.ApiOption();
        var send = new Command("send", "POST a JSON body to /api/v1/webhooks/HOOK") { hook, data, headers, api };
        send.SetAction((result, ct) => CliOutput.WithClientAsync(result.GetValue(api), async client =>
        {
            var body = result.GetValue(data)!;
            try
            {
                JsonNode.Parse(body);
            }
            catch (JsonException ex)
            {
                return CliOutput.Error($"--data is not valid JSON: {ex.Message}");
            }

            var extra = new List<KeyValuePair<string, string>>();
            foreach (var header in result.GetValue(headers) ?? [])
            {
                var equals = header.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0)
                {
                    return CliOutput.Error($"header '{header}' is not Name=Value");
                }

                extra.Add(KeyValuePair.Create(header[..equals], header[(equals + 1)..]));
            }

            var reply = await client.PostJsonAsync($"api/v1/webhooks/{result.GetValue(hook)}", body, extra, ct);
            Console.WriteLine(CliOutput.Json(reply.Body));
            return reply.IsSuccess ? CliOutput.Ok : CliOutput.Failed;
        }));
        return new Command("webhook", "Send webhooks") { send };
    }
}
