using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace ServerlessStorm.Cli.Commands;

/// <summary>storm key set/get/list/delete: the datastore, as st2 key does.</summary>
internal static class KeyCommands
{
    public static Command Create()
    {
        Option<string> Scope() => new("--scope") { Description = "system or user", DefaultValueFactory = _ => "system" };

        var setName = new Argument<string>("NAME");
        var setValue = new Argument<string>("VALUE");
        var secret = new Option<bool>("--secret") { Description = "Encrypt the value at rest and mask it in every output" };
        var ttl = new Option<int?>("--ttl") { Description = "Seconds until the pair expires" };
        var setScope = Scope();
        var setApi = CliOutput.ApiOption();
        var set = new Command("set", "Store a value") { setName, setValue, secret, ttl, setScope, setApi };
        set.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(setApi), async client =>
        {
            var body = new JsonObject { ["value"] = r.GetValue(setValue), ["secret"] = r.GetValue(secret), ["scope"] = r.GetValue(setScope), ["ttl"] = r.GetValue(ttl) };
            return Print(await client.SendJsonAsync(HttpMethod.Put, $"api/v1/keys/{Uri.EscapeDataString(r.GetValue(setName)!)}", body.ToJsonString(), ct), json: false);
        }));

        var getName = new Argument<string>("NAME");
        var decrypt = new Option<bool>("--decrypt") { Description = "Show a secret's value" };
        var getScope = Scope();
        var getJson = new Option<bool>("--json");
        var getApi = CliOutput.ApiOption();
        var get = new Command("get", "Show a value") { getName, decrypt, getScope, getJson, getApi };
        get.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(getApi), async client =>
            Print(await client.GetAsync($"api/v1/keys/{Uri.EscapeDataString(r.GetValue(getName)!)}?scope={r.GetValue(getScope)}&decrypt={r.GetValue(decrypt)}", ct), r.GetValue(getJson))));

        var prefix = new Option<string?>("--prefix") { Description = "Only names starting with this" };
        var listDecrypt = new Option<bool>("--decrypt") { Description = "Show secrets' values" };
        var listScope = Scope();
        var listJson = new Option<bool>("--json");
        var listApi = CliOutput.ApiOption();
        var list = new Command("list", "List values") { prefix, listDecrypt, listScope, listJson, listApi };
        list.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(listApi), async client =>
        {
            var query = $"scope={r.GetValue(listScope)}&decrypt={r.GetValue(listDecrypt)}" + (r.GetValue(prefix) is { } p ? $"&prefix={Uri.EscapeDataString(p)}" : "");
            var reply = await client.GetAsync($"api/v1/keys?{query}", ct);
            if (!reply.IsSuccess || r.GetValue(listJson))
            {
                return Print(reply, json: true);
            }

            var table = new Table().AddColumns("name", "value", "secret", "scope", "expire_timestamp");
            foreach (var pair in reply.Body!.AsArray())
            {
                table.AddRow([.. new[] { "name", "value", "secret", "scope", "expire_timestamp" }.Select(c => Markup.Escape(pair?[c]?.ToString() ?? ""))]);
            }

            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }).Write(table);
            return CliOutput.Ok;
        }));

        var deleteName = new Argument<string>("NAME");
        var deleteScope = Scope();
        var deleteApi = CliOutput.ApiOption();
        var delete = new Command("delete", "Delete a value") { deleteName, deleteScope, deleteApi };
        delete.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(deleteApi), async client =>
            Print(await client.SendJsonAsync(HttpMethod.Delete, $"api/v1/keys/{Uri.EscapeDataString(r.GetValue(deleteName)!)}?scope={r.GetValue(deleteScope)}", null, ct), json: false)));

        return new Command("key", "Work with the datastore") { set, get, list, delete };
    }

    private static int Print(Client.ApiReply reply, bool json)
    {
        if (!reply.IsSuccess)
        {
            return CliOutput.Error(reply.Fault, reply.StatusCode == 404 ? CliOutput.Failed : CliOutput.InvalidInput);
        }

        if (json || reply.Body is not JsonObject pair || pair["name"] is null)
        {
            Console.WriteLine(CliOutput.Json(reply.Body));
        }
        else
        {
            foreach (var field in new[] { "name", "value", "secret", "scope", "expire_timestamp" })
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{field}: {pair[field]}"));
            }
        }

        return CliOutput.Ok;
    }
}
