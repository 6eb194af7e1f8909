using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using ServerlessStorm.Engine.Api;

namespace ServerlessStorm.Functions;

/// <summary>Translation between ASP.NET Core's request and result types and the engine's <see cref="ApiGateway"/>.</summary>
internal static class HttpResults
{
    public static async Task<ApiRequest> ToApiRequestAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, cancellationToken);
        return new ApiRequest
        {
            Method = request.Method,
            Path = request.Path.Value ?? "/",
            Query = request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal),
            Headers = [.. request.Headers.Select(h => KeyValuePair.Create(h.Key, h.Value.ToString()))],
            Body = body.ToArray(),
        };
    }

    public static IActionResult ToActionResult(ApiResponse response, HttpResponse http)
    {
        foreach (var (name, value) in response.Headers)
        {
            http.Headers[name] = value;
        }

        return response.Body is null
            ? new StatusCodeResult(response.StatusCode)
            : new ContentResult { Content = response.Body.ToJsonString(), ContentType = "application/json; charset=utf-8", StatusCode = response.StatusCode };
    }
}
