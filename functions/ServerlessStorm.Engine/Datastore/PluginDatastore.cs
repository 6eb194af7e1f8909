using System.Text.Json.Nodes;

namespace ServerlessStorm.Engine.Datastore;

/// <summary>
/// One datastore call from pack code (a Python action's <c>action_service</c>, a sensor's <c>sensor_service</c>, a
/// C# sensor): <c>get</c>, <c>set</c>, <c>list</c> or <c>delete</c>, with StackStorm's arguments.
/// </summary>
public sealed record DatastoreCall(string Operation, string? Name = null, string? Value = null, bool Local = true, string Scope = "system",
    bool Decrypt = false, bool Encrypt = false, int? Ttl = null, string? Prefix = null);

/// <summary>
/// StackStorm's datastore service for pack code: names are local to the pack and class (<c>pack.Class:name</c>)
/// unless <c>local=False</c>, and only the system scope is offered (StackStorm refuses the others the same way).
/// A secret stays encrypted unless read with <c>decrypt</c>.
/// </summary>
public sealed class PluginDatastore(KeyValueService keys, string pack, string className)
{
    public const string Separator = ":";

    public string LocalPrefix => $"{pack}.{className}{Separator}";

    /// <summary>The call's answer: a value or null (get), true (set), the pairs (list), whether it existed (delete).</summary>
    public async Task<JsonNode?> HandleAsync(DatastoreCall call, CancellationToken cancellationToken)
    {
        if (call.Scope != "system")
        {
            throw new KeyValueException($"Scope {call.Scope} is unsupported.");
        }

        switch (call.Operation)
        {
            case "get":
                var record = await keys.GetAsync(call.Scope, FullName(call), call.Decrypt, cancellationToken);
                return record?.Value;
            case "set":
                await keys.SetAsync(call.Scope, FullName(call), call.Value ?? "", call.Encrypt,
                    call.Ttl is > 0 and var ttl ? TimeSpan.FromSeconds(ttl) : null, cancellationToken);
                return true;
            case "delete":
                return await keys.DeleteAsync(call.Scope, FullName(call), cancellationToken);
            case "list":
                var prefix = call.Local ? LocalPrefix + call.Prefix : call.Prefix;
                var pairs = new JsonArray();
                foreach (var pair in await keys.ListAsync(call.Scope, string.IsNullOrEmpty(prefix) ? null : prefix, cancellationToken))
                {
                    pairs.Add(new JsonObject { ["name"] = pair.Name, ["value"] = pair.Value, ["secret"] = pair.Secret, ["scope"] = pair.Scope });
                }

                return pairs;
            default:
                throw new KeyValueException($"'{call.Operation}' is not a datastore operation (get, set, list, delete)");
        }
    }

    private string FullName(DatastoreCall call) =>
        string.IsNullOrEmpty(call.Name) ? throw new KeyValueException($"the datastore {call.Operation} needs a key name")
        : call.Local ? LocalPrefix + call.Name : call.Name;
}
