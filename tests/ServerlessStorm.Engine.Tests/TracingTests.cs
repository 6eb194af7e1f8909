using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>One trace per event: every hop's span continues the trace from the context its message carries.</summary>
public sealed class TracingTests : IDisposable
{
    private readonly SpanRecorder _spans = new();

    public void Dispose() => _spans.Dispose();

    private static Activity Single(IReadOnlyList<Activity> spans, string name) =>
        Assert.Single(spans, s => s.OperationName == name);

    [Fact]
    public async Task AWebhook_IsOneTrace_FromAcceptanceToTheActionsRun_WithEveryHopParentedByTheOneBefore()
    {
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus());

        var response = await host.Api.PostWebhookAsync("hello", [], Encoding.UTF8.GetBytes("""{"name": "trace"}"""), TestCallers.Admin, CancellationToken.None);
        var traceTag = response.Body!["trace_tag"]!.GetValue<string>();
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(traceTag, CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));
        var accept = _spans.All.Single(s => s.OperationName == StormTracing.WebhookAccept && (string?)s.GetTagItem(StormTracing.TraceTag) == traceTag);
        var spans = await Eventually.ReturnsAsync(() => Task.FromResult(_spans.InTrace(accept.TraceId)), s => s.Any(x => x.OperationName == StormTracing.ExecutionRun));

        var dispatch = Single(spans, StormTracing.TriggerDispatch);
        var rules = Single(spans, StormTracing.RulesEvaluate);
        var enforce = Single(spans, StormTracing.RuleEnforce);
        var request = Single(spans, StormTracing.ExecutionRequest);
        var wait = Single(spans, StormTracing.ExecutionQueueWait);
        var run = Single(spans, StormTracing.ExecutionRun);
        Assert.Equal(accept.SpanId, dispatch.ParentSpanId);
        Assert.Equal(dispatch.SpanId, rules.ParentSpanId);
        Assert.Equal(rules.SpanId, enforce.ParentSpanId);
        Assert.Equal(enforce.SpanId, request.ParentSpanId);
        Assert.Equal(request.SpanId, run.ParentSpanId);
        Assert.Equal(request.SpanId, wait.ParentSpanId);
        Assert.Equal((ActivityKind.Producer, ActivityKind.Consumer, ActivityKind.Producer, ActivityKind.Consumer), (dispatch.Kind, rules.Kind, request.Kind, run.Kind));

        // StackStorm's identifiers are on the spans, so a search for any of them finds the trace.
        var execution = trace.Executions[0];
        Assert.All(spans, s => Assert.Equal(traceTag, s.GetTagItem(StormTracing.TraceTag)));
        Assert.Equal("examples.hello", enforce.GetTagItem(StormTracing.RuleRef));
        Assert.Equal(execution.Id, run.GetTagItem(StormTracing.ExecutionId));
        Assert.Equal("core.local", run.GetTagItem(StormTracing.ActionRef));
        Assert.Equal(trace.TriggerInstances.Single().Id, rules.GetTagItem(StormTracing.TriggerInstanceId));
        Assert.Equal("hello", accept.GetTagItem(StormTracing.Webhook));
        Assert.All(spans, s => Assert.NotEqual(ActivityStatusCode.Error, s.Status));
    }

    [Fact]
    public async Task ARejectedWebhook_IsAFailedSpan_WithTheReason()
    {
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus());

        var response = await host.Api.PostWebhookAsync("hello", [], Encoding.UTF8.GetBytes("{not json"), TestCallers.Admin, CancellationToken.None);

        var rejection = response.Body!["rejection_id"]!.GetValue<string>();
        var span = _spans.All.Single(s => (string?)s.GetTagItem(StormTracing.TriggerInstanceId) == rejection);
        Assert.Equal((StormTracing.WebhookAccept, ActivityStatusCode.Error, 400), (span.OperationName, span.Status, (int)span.GetTagItem("http.response.status_code")!));
        Assert.StartsWith("the body is not valid JSON", span.StatusDescription, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARedelivery_ContinuesTheSameTrace_FromTheSameParent()
    {
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus());
        var consumers = host.Services.GetRequiredService<StormConsumers>();
        BusMessage message;
        ActivityContext sender;
        using (var dispatch = StormTracing.Source.StartActivity("test sender", ActivityKind.Producer))
        {
            sender = dispatch!.Context;
            message = StormEvents.Encode(new TriggerInstance("ti-redelivered", CoreTriggers.Webhook, new JsonObject { ["url"] = "nobody" }, new JsonObject(), DateTimeOffset.UtcNow, "t-redelivered"));
        }

        await consumers.HandleTriggerInstanceAsync(message, CancellationToken.None);
        await consumers.HandleTriggerInstanceAsync(message with { DeliveryCount = 2 }, CancellationToken.None);

        var handled = _spans.InTrace(sender.TraceId).Where(s => s.OperationName == StormTracing.RulesEvaluate).ToList();
        Assert.Equal(2, handled.Count);
        Assert.All(handled, s => Assert.Equal(sender.SpanId, s.ParentSpanId));
        Assert.Equal([1, 2], handled.Select(s => (int)s.GetTagItem(StormTracing.DeliveryCount)!).Order());
    }

    [Fact]
    public async Task NoSpan_CarriesASecret()
    {
        using var packs = new TempPacks().WithPack("s");
        packs.Write("s/actions/login.yaml", """
            name: login
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'echo "$password"'}
              password: {type: string, secret: true}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var requested = await host.Services.GetRequiredService<ExecutionService>().RunAsync("s.login", new JsonObject { ["password"] = "pa55-canary-trace" }, null, TestCallers.Admin.User, CancellationToken.None);
        await host.WaitForExecutionAsync(requested.Id);
        var spans = await Eventually.ReturnsAsync(() => Task.FromResult(_spans.All.Where(s => (string?)s.GetTagItem(StormTracing.ExecutionId) == requested.Id).ToList()),
            s => s.Any(x => x.OperationName == StormTracing.ExecutionRun));

        Assert.All(spans.SelectMany(s => s.TagObjects.Select(t => t.Value?.ToString() ?? "").Append(s.StatusDescription ?? "").Append(s.DisplayName)),
            text => Assert.DoesNotContain("pa55-canary-trace", text, StringComparison.Ordinal));
    }
}
