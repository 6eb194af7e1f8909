using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Audit;

/// <summary>Masks the values of secret parameters wherever they would be kept or shown.</summary>
public static class SecretMasker
{
    public const string Mask = "********";

    /// <summary>
    /// Secrets shorter than this are masked where they stand (the parameter, the datastore value) but not searched
    /// for in output: masking every "t" would corrupt the output and tell which letter the secret is.
    /// </summary>
    public const int MinimumLength = 4;

    /// <summary>
    /// The texts a secret parameter's value is made of: a string itself, and every string and number inside a secret
    /// object or array (what an action can print: <c>{{ creds.pass }}</c>). Those too short to search for are left out.
    /// </summary>
    public static IReadOnlyList<string> SecretValues(ActionDefinition action, JsonObject parameters) =>
        [.. action.Parameters.Values
            .Where(p => p.Secret && parameters[p.Name] is not null)
            .SelectMany(p => Leaves(parameters[p.Name]))
            .Where(s => s.Length >= MinimumLength)
            .Distinct(StringComparer.Ordinal)];

    /// <summary>The secret parameters whose value (or a part of it) is too short to be searched for in output.</summary>
    public static IReadOnlyList<string> TooShortToMask(ActionDefinition action, JsonObject parameters) =>
        [.. action.Parameters.Values.Where(p => p.Secret && parameters[p.Name] is not null && Leaves(parameters[p.Name]).Any(s => s.Length is > 0 and < MinimumLength)).Select(p => p.Name)];

    private static IEnumerable<string> Leaves(JsonNode? node) => node switch
    {
        JsonObject obj => obj.SelectMany(p => Leaves(p.Value)),
        JsonArray array => array.SelectMany(Leaves),
        JsonValue v when v.TryGetValue<string>(out var s) => [s],
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => [v.ToJsonString()],
        _ => [],
    };

    /// <summary>
    /// Each secret and the forms it takes when a program prints it escaped: JSON-escaped (.NET's and Python's
    /// <c>json.dumps</c>) and URL-encoded (RFC 3986, with <c>+</c> for spaces, and with <c>/</c> left as is), so a
    /// secret an action prints as JSON or puts in a URL is masked too.
    /// </summary>
    public static List<string> Expand(IEnumerable<string> secrets)
    {
        var forms = new HashSet<string>(StringComparer.Ordinal);
        foreach (var secret in secrets.Where(s => s.Length >= MinimumLength))
        {
            var url = Uri.EscapeDataString(secret);
            foreach (var form in new[]
            {
                secret,
                JsonEncodedText.Encode(secret).Value,
                JsonEncodedText.Encode(secret, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).Value,
                PythonJsonEscape(secret),
                url,
                url.Replace("%20", "+", StringComparison.Ordinal),
                url.Replace("%2F", "/", StringComparison.Ordinal),
            })
            {
                forms.Add(form);
            }
        }

        return [.. forms];
    }

    // json.dumps with its default ensure_ascii: quotes, backslashes and controls escaped, non-ASCII as \uXXXX (lower-case hex).
    private static string PythonJsonEscape(string text)
    {
        var result = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            result.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                _ when c < 0x20 || c > 0x7e => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture),
                _ => c.ToString(),
            });
        }

        return result.ToString();
    }

    public static JsonObject MaskParameters(ActionDefinition action, JsonObject parameters)
    {
        var masked = (JsonObject)parameters.DeepClone();
        foreach (var definition in action.Parameters.Values.Where(p => p.Secret && masked.ContainsKey(p.Name)))
        {
            masked[definition.Name] = Mask;
        }

        var secrets = SecretValues(action, parameters);
        return secrets.Count == 0 ? masked : (JsonObject)MaskValues(masked, Expand(secrets))!;
    }

    /// <summary>
    /// Replaces every occurrence of a secret inside the strings of <paramref name="node"/> (results that echo them),
    /// and a number that is a secret by the mask.
    /// </summary>
    public static JsonNode? MaskValues(JsonNode? node, IReadOnlyList<string> secrets)
    {
        if (secrets.Count == 0)
        {
            return node;
        }

        return node switch
        {
            JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, MaskValues(p.Value, secrets)))),
            JsonArray array => new JsonArray([.. array.Select(i => MaskValues(i, secrets))]),
            JsonValue v when v.TryGetValue<string>(out var s) => JsonValue.Create(MaskText(s, secrets)),
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && secrets.Contains(v.ToJsonString(), StringComparer.Ordinal) => JsonValue.Create(Mask),
            _ => node?.DeepClone(),
        };
    }

    /// <summary>Masks every secret in <paramref name="text"/>, the longest first, so one that contains another goes whole.</summary>
    public static string MaskText(string text, IReadOnlyList<string> secrets)
    {
        foreach (var secret in secrets.Where(s => s.Length > 0).OrderByDescending(s => s.Length))
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }

        return text;
    }
}
