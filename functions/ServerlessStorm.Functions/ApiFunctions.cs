using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using ServerlessStorm.Engine.Api;

namespace ServerlessStorm.Functions;

/// <summary>
/// The HTTP API, StackStorm's paths under /api/v1, each a thin call into <see cref="StormApi"/>. Those that may steer
/// a workflow (cancel, pause/resume, answering an approval) bind the Durable client and hand it to the engine.
/// </summary>
public sealed class ApiFunctions(StormApi api, DurableFunctionsWorkflowEngine workflows)
{
    [Function("Webhook")]
    public async Task<IActionResult> WebhookAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v1/webhooks/{*hook}")] HttpRequest request,
        string hook,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.PostWebhookAsync(hook, HttpResults.Headers(request), await HttpResults.BodyAsync(request, cancellationToken), cancellationToken));

    [Function("CreateExecution")]
    public async Task<IActionResult> CreateExecutionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v1/executions")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        var (body, error) = await HttpResults.JsonBodyAsync(request, cancellationToken);
        return error ?? HttpResults.ToActionResult(await api.PostExecutionAsync(body, request.Headers["st2-trace-tag"].FirstOrDefault(), cancellationToken));
    }

    [Function("ListExecutions")]
    public async Task<IActionResult> ListExecutionsAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/executions")] HttpRequest request,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.ListExecutionsAsync(HttpResults.Query(request), cancellationToken));

    [Function("GetExecution")]
    public async Task<IActionResult> GetExecutionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/executions/{id}")] HttpRequest request,
        string id,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.GetExecutionAsync(id, cancellationToken));

    [Function("ReRunExecution")]
    public async Task<IActionResult> ReRunExecutionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "v1/executions/{id}/re_run")] HttpRequest request,
        string id,
        CancellationToken cancellationToken)
    {
        var (body, error) = await HttpResults.JsonBodyAsync(request, cancellationToken);
        return error ?? HttpResults.ToActionResult(await api.ReRunExecutionAsync(id, body, cancellationToken));
    }

    [Function("GetExecutionOutput")]
    public async Task<IActionResult> GetExecutionOutputAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/executions/{id}/output")] HttpRequest request,
        string id,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.GetExecutionOutputAsync(id, HttpResults.Query(request), cancellationToken));

    [Function("CancelExecution")]
    public async Task<IActionResult> CancelExecutionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "delete", Route = "v1/executions/{id}")] HttpRequest request,
        string id,
        [DurableClient] DurableTaskClient durable,
        CancellationToken cancellationToken)
    {
        workflows.Use(durable);
        return HttpResults.ToActionResult(await api.CancelExecutionAsync(id, cancellationToken));
    }

    [Function("ListTriggerInstances")]
    public async Task<IActionResult> ListTriggerInstancesAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/triggerinstances")] HttpRequest request,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.ListTriggerInstancesAsync(HttpResults.Query(request), cancellationToken));

    [Function("ListKeys")]
    public async Task<IActionResult> ListKeysAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/keys")] HttpRequest request,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.ListKeysAsync(HttpResults.Query(request), cancellationToken));

    [Function("GetKey")]
    public async Task<IActionResult> GetKeyAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/keys/{name}")] HttpRequest request,
        string name,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.GetKeyAsync(name, HttpResults.Query(request), cancellationToken));

    [Function("PutKey")]
    public async Task<IActionResult> PutKeyAsync(
        [HttpTrigger(AuthorizationLevel.Function, "put", Route = "v1/keys/{name}")] HttpRequest request,
        string name,
        CancellationToken cancellationToken)
    {
        var (body, error) = await HttpResults.JsonBodyAsync(request, cancellationToken);
        return error ?? HttpResults.ToActionResult(await api.PutKeyAsync(name, body, cancellationToken));
    }

    [Function("DeleteKey")]
    public async Task<IActionResult> DeleteKeyAsync(
        [HttpTrigger(AuthorizationLevel.Function, "delete", Route = "v1/keys/{name}")] HttpRequest request,
        string name,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.DeleteKeyAsync(name, HttpResults.Query(request), cancellationToken));

    [Function("GetTrace")]
    public async Task<IActionResult> GetTraceAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/traces/{traceTag}")] HttpRequest request,
        string traceTag,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.GetTraceAsync(traceTag, cancellationToken));

    [Function("UpdateExecution")]
    public async Task<IActionResult> UpdateExecutionAsync(
        [HttpTrigger(AuthorizationLevel.Function, "put", Route = "v1/executions/{id}")] HttpRequest request,
        string id,
        [DurableClient] DurableTaskClient durable,
        CancellationToken cancellationToken)
    {
        workflows.Use(durable);
        var (body, error) = await HttpResults.JsonBodyAsync(request, cancellationToken);
        return error ?? HttpResults.ToActionResult(await api.UpdateExecutionAsync(id, body, cancellationToken));
    }

    [Function("ListInquiries")]
    public async Task<IActionResult> ListInquiriesAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/inquiries")] HttpRequest request,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.ListInquiriesAsync(HttpResults.Query(request), cancellationToken));

    [Function("GetInquiry")]
    public async Task<IActionResult> GetInquiryAsync(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "v1/inquiries/{id}")] HttpRequest request,
        string id,
        CancellationToken cancellationToken) =>
        HttpResults.ToActionResult(await api.GetInquiryAsync(id, cancellationToken));

    [Function("RespondToInquiry")]
    public async Task<IActionResult> RespondToInquiryAsync(
        [HttpTrigger(AuthorizationLevel.Function, "put", Route = "v1/inquiries/{id}")] HttpRequest request,
        string id,
        [DurableClient] DurableTaskClient durable,
        CancellationToken cancellationToken)
    {
        workflows.Use(durable);
        var (body, error) = await HttpResults.JsonBodyAsync(request, cancellationToken);
        return error ?? HttpResults.ToActionResult(await api.RespondToInquiryAsync(id, body, cancellationToken));
    }
}
