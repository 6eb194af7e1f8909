using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>The whole path on the Azure ports: Storage Queues between the stages, the audit in Table Storage.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class AzurePipelineTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task HelloWebhook_OverStorageQueues_IsAuditedInTables()
    {
        using var spans = new SpanRecorder();
        var storage = Options.Create(azurite.NewStorageOptions());
        var audit = new TableAuditStore(storage, TimeProvider.System);
        var bus = new StorageQueueMessageBus(storage, Options.Create(new BusOptions()), Options.Create(new StorageQueueOptions()), NullLogger<StorageQueueMessageBus>.Instance);
        await using var host = await StormTestHost.StartAsync(audit, bus);

        var response = await host.Api.PostWebhookAsync("hello", [], Encoding.UTF8.GetBytes("""{"name": "queues"}"""), TestCallers.Admin, CancellationToken.None);
        var traceTag = response.Body!["trace_tag"]!.GetValue<string>();

        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status) && t.HasProcessedWebhook());
        Assert.Equal("Hello queues", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
        Assert.Equal(ExecutionStatus.Succeeded, trace.Executions[0].Status);
        Assert.Single(trace.RuleEnforcements);

        // One trace across the Storage Queues, from the webhook to the action's run.
        var accept = spans.All.Single(s => s.OperationName == StormTracing.WebhookAccept && (string?)s.GetTagItem(StormTracing.TraceTag) == traceTag);
        var hops = await Eventually.ReturnsAsync(() => Task.FromResult(spans.InTrace(accept.TraceId)), s => s.Any(x => x.OperationName == StormTracing.ExecutionRun));
        Assert.Equal(trace.Executions[0].Id, hops.Single(s => s.OperationName == StormTracing.ExecutionRun).GetTagItem(StormTracing.ExecutionId));
        Assert.Contains(hops, s => s.OperationName == StormTracing.RulesEvaluate && s.Kind == System.Diagnostics.ActivityKind.Consumer);

        // The audit writes the path waits on (written through to Table Storage here) are spans of the same trace.
        var writes = hops.Where(s => s.OperationName == StormTracing.AuditWrite).ToList();
        Assert.Contains(writes, w => (string?)w.GetTagItem(StormTracing.AuditKind) == "trigger_instance");
        Assert.Contains(writes, w => (string?)w.GetTagItem(StormTracing.AuditKind) == "execution" && (string?)w.GetTagItem(StormTracing.AuditRecordId) == trace.Executions[0].Id);
        Assert.All(writes, w => Assert.Contains(hops, parent => parent.SpanId == w.ParentSpanId));
    }
}
