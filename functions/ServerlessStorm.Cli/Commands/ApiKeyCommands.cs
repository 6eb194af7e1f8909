using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using ServerlessStorm.Engine.Yaml;

namespace ServerlessStorm.Cli.Commands;

/// <summary>storm apikey create/list/get/enable/disable/delete/load: API keys, as st2 apikey manages them.</summary>
internal static class ApiKeyCommands
{
    private static readonly string[] Columns = ["id", "user", "enabled", "created_at", "metadata"];

    public static Command Create()
    {
        var createUser = new Option<string?>("--user", "-u") { Description = "Whose key (default: the user of your own key)" };
        var metadata = new Option<string?>("--metadata", "-m") { Description = "Metadata, a JSON object (e.g. '{\"used_by\": \"ci\"}')" };
        var onlyKey = new Option<bool>("--only-key", "-k") { Description = "Print only the key" };
        var createApi = CliOutput.ApiOption();
        var create = new Command("create", "Create an API key; the key is shown now and never again") { createUser, metadata, onlyKey, createApi };
        create.SetAction((r, ct) =>
        {
            var body = new JsonObject();
            if (r.GetValue(createUser) is { Length: > 0 } user)
            {
                body["user"] = user;
            }

            if (r.GetValue(metadata) is { } text)
            {
                try
                {
                    body["metadata"] = JsonNode.Parse(text) as JsonObject ?? throw new JsonException("not an object");
                }
                catch (JsonException ex)
                {
                    return Task.FromResult(CliOutput.Error($"--metadata must be a JSON object: {ex.Message}"));
                }
            }

            return CliOutput.WithClientAsync(r.GetValue(createApi), async client =>
            {
                var reply = await client.SendJsonAsync(HttpMethod.Post, "api/v1/apikeys", body.ToJsonString(), ct);
                if (reply.IsSuccess && r.GetValue(onlyKey))
                {
                    Console.WriteLine(reply.Body?["key"]?.GetValue<string>());
                    return CliOutput.Ok;
                }

                return Print(reply);
            });
        });

        var showSecrets = new Option<bool>("--show-secrets") { Description = "Show the key hashes (what 'load' takes, to move keys to another server)" };
        var listJson = new Option<bool>("--json");
        var listApi = CliOutput.ApiOption();
        var list = new Command("list", "List API keys (never their keys)") { showSecrets, listJson, listApi };
        list.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(listApi), async client =>
        {
            var reply = await client.GetAsync($"api/v1/apikeys?show_secrets={r.GetValue(showSecrets)}", ct);
            if (!reply.IsSuccess || r.GetValue(listJson) || r.GetValue(showSecrets))
            {
                return Print(reply);
            }

            var table = new Table().AddColumns(Columns);
            foreach (var key in reply.Body!.AsArray())
            {
                table.AddRow([.. Columns.Select(c => Markup.Escape(key?[c] is JsonObject o ? o.ToJsonString() : key?[c]?.ToString() ?? ""))]);
            }

            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) }).Write(table);
            return CliOutput.Ok;
        }));

        var getId = new Argument<string>("ID") { Description = "The key's id" };
        var getApi = CliOutput.ApiOption();
        var get = new Command("get", "Show an API key") { getId, getApi };
        get.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(getApi), async client =>
            Print(await client.GetAsync($"api/v1/apikeys/{Uri.EscapeDataString(r.GetValue(getId)!)}", ct))));

        Command Toggle(string name, bool enabled)
        {
            var id = new Argument<string>("ID") { Description = "The key's id" };
            var api = CliOutput.ApiOption();
            var command = new Command(name, enabled ? "Let an API key in again" : "Stop an API key from working (it can be enabled again)") { id, api };
            command.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(api), async client =>
                Print(await client.SendJsonAsync(HttpMethod.Put, $"api/v1/apikeys/{Uri.EscapeDataString(r.GetValue(id)!)}", new JsonObject { ["enabled"] = enabled }.ToJsonString(), ct))));
            return command;
        }

        var deleteId = new Argument<string>("ID") { Description = "The key's id" };
        var deleteApi = CliOutput.ApiOption();
        var delete = new Command("delete", "Delete an API key for good") { deleteId, deleteApi };
        delete.SetAction((r, ct) => CliOutput.WithClientAsync(r.GetValue(deleteApi), async client =>
        {
            var reply = await client.SendJsonAsync(HttpMethod.Delete, $"api/v1/apikeys/{Uri.EscapeDataString(r.GetValue(deleteId)!)}", null, ct);
            if (reply.IsSuccess)
            {
                Console.WriteLine($"API key {r.GetValue(deleteId)} deleted");
                return CliOutput.Ok;
            }

            return Print(reply);
        }));

        var file = new Argument<string>("FILE") { Description = "JSON or YAML: a list of keys with user and key_hash (from 'list --show-secrets', here or in st2)" };
        var loadApi = CliOutput.ApiOption();
        var load = new Command("load", "Load API keys by their hashes, as exported from this platform or from StackStorm") { file, loadApi };
        load.SetAction((r, ct) =>
        {
            JsonArray keys;
            try
            {
                keys = ReadKeys(r.GetValue(file)!);
            }
            catch (Exception ex) when (ex is IOException or YamlReadException or InvalidDataException)
            {
                return Task.FromResult(CliOutput.Error($"cannot read {r.GetValue(file)}: {ex.Message}"));
            }

            return CliOutput.WithClientAsync(r.GetValue(loadApi), async client =>
            {
                var failed = 0;
                foreach (var key in keys.OfType<JsonObject>())
                {
                    var body = new JsonObject { ["user"] = key["user"]?.DeepClone(), ["key_hash"] = key["key_hash"]?.DeepClone(), ["metadata"] = key["metadata"]?.DeepClone(), ["enabled"] = key["enabled"]?.DeepClone() ?? true };
                    var reply = await client.SendJsonAsync(HttpMethod.Post, "api/v1/apikeys", body.ToJsonString(), ct);
                    if (reply.IsSuccess)
                    {
                        Console.WriteLine($"loaded the key of {key["user"]} as {reply.Body?["id"]}");
                    }
                    else
                    {
                        failed++;
                        Console.Error.WriteLine($"error: the key of {key["user"]}: {reply.Fault}");
                    }
                }

                return failed == 0 ? CliOutput.Ok : CliOutput.Failed;
            });
        });

        return new Command("apikey", "Manage API keys (St2-Api-Key)") { create, list, get, Toggle("enable", true), Toggle("disable", false), delete, load };
    }

    private static JsonArray ReadKeys(string path)
    {
        var text = File.ReadAllText(path);
        // YAML (as 'st2 apikey list -dy --show-secrets' writes it) or JSON, which is YAML too.
        var document = BoundedYamlReader.Read(text)?.ToJson();

        return document switch
        {
            JsonArray array => array,
            JsonObject single => [single.DeepClone()],
            _ => throw new InvalidDataException("expected a list of keys, each with user and key_hash"),
        };
    }

    private static int Print(Client.ApiReply reply)
    {
        if (!reply.IsSuccess)
        {
            return CliOutput.Error(reply.Fault, reply.StatusCode == 404 ? CliOutput.Failed : CliOutput.InvalidInput);
        }

        Console.WriteLine(CliOutput.Json(reply.Body));
        return CliOutput.Ok;
    }
}
