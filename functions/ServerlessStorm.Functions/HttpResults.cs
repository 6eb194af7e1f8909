using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using ServerlessStorm.Engine.Api;

namespace ServerlessStorm.Functions;

/// <summary>Translation between ASP.NET Core's request and result types and the engine's <see cref="StormApi"/>.</summary>
internal static class HttpResults
{
    public static IActionResult ToActionResult(ApiResponse response) => new ContentResult
    {
        Content = response.Body.ToJsonString(),
        ContentType = "application/json; charset=utf-8",
        StatusCode = response.StatusCode,
    };

    public static Dictionary<string, string?> Query(HttpRequest request) =>
        request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal);

    public static IEnumerable<KeyValuePair<string, string>> Headers(HttpRequest request) =>
        request.Headers.Select(h => KeyValuePair.Create(h.Key, h.Value.ToString()));

    /// <summary>The body as JSON (null for an empty body), or the 400 answer that says why it is not JSON.</summary>
    public static async Task<(JsonNode? Body, IActionResult? Error)> JsonBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength is 0)
        {
            return (null, null);
        }

        try
        {
            return (await JsonNode.ParseAsync(request.Body, cancellationToken: cancellationToken), null);
        }
        catch (JsonException ex)
        {
            return (null, ToActionResult(ApiResponse.Fault(400, $"the body is not valid JSON: {ex.Message}")));
        }
    }

    public static async Task<byte[]> BodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, cancellationToken);
        return body.ToArray();
    }
}
