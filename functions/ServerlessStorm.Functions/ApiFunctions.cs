using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using ServerlessStorm.Engine.Api;

namespace ServerlessStorm.Functions;

/// <summary>
/// The HTTP API, StackStorm's paths under /api/v1 and /auth/v1: every request goes to the engine's
/// <see cref="ApiGateway"/>, which routes, authenticates (API keys, tokens, Entra ID) and authorizes it, as it does
/// for <c>storm serve</c>. The functions are anonymous to the Functions host: its keys carry no user, so they are not
/// the user model. The Durable client is bound so requests that steer workflows can reach them.
/// </summary>
public sealed class ApiFunctions(ApiGateway gateway, DurableFunctionsWorkflowEngine workflows)
{
    [Function("Api")]
    public Task<IActionResult> ApiAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "post", "put", "delete", "options", Route = "api/{*path}")] HttpRequest request,
        [DurableClient] DurableTaskClient durable,
        CancellationToken cancellationToken) => HandleAsync(request, durable, cancellationToken);

    [Function("Auth")]
    public Task<IActionResult> AuthAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "post", "options", Route = "auth/{*path}")] HttpRequest request,
        [DurableClient] DurableTaskClient durable,
        CancellationToken cancellationToken) => HandleAsync(request, durable, cancellationToken);

    private async Task<IActionResult> HandleAsync(HttpRequest request, DurableTaskClient durable, CancellationToken cancellationToken)
    {
        if (durable is not null)
        {
            workflows.Use(durable);
        }

        var response = await gateway.HandleAsync(await HttpResults.ToApiRequestAsync(request, cancellationToken), cancellationToken);
        return HttpResults.ToActionResult(response, request.HttpContext.Response);
    }
}
