namespace ServerlessStorm.Engine.Api;

/// <summary>
/// An HTTP request as the engine sees it, whatever host received it: method, path (decoded, from the site root, such
/// as <c>/api/v1/executions</c>), query, headers in the order received, and the raw body.
/// </summary>
public sealed class ApiRequest
{
    public required string Method { get; init; }

    public required string Path { get; init; }

    public IReadOnlyDictionary<string, string?> Query { get; init; } = new Dictionary<string, string?>();

    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    public ReadOnlyMemory<byte> Body { get; init; }

    /// <summary>The first value of header <paramref name="name"/> (case-insensitive), or null.</summary>
    public string? Header(string name)
    {
        foreach (var (key, value) in Headers)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        return null;
    }
}
