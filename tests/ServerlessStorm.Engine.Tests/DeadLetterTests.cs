using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// A trigger instance whose handling keeps failing is dead-lettered on the durable in-process bus, its audit record
/// says why and how to resume, and a replay after the cause is gone acts on it once.
/// </summary>
public sealed class DeadLetterTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("storm-deadletter-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task FailingEveryDelivery_TriggerInstanceIsDeadLettered_MarkedInTheAudit_AndAReplayActsOnItOnce()
    {
        var audit = new InMemoryAuditStore();
        await using var bus = SqliteMessageBus.Open(_directory, new BusOptions { MaxDeliveryCount = 3, RetryDelay = TimeSpan.FromMilliseconds(50) });
        var flaky = new FlakyEvaluator();
        await using var host = await StormTestHost.StartAsync(audit, bus, configure: services =>
        {
            services.Configure<BusOptions>(o => o.MaxDeliveryCount = 3);
            services.AddSingleton<CompiledRuleEvaluator>();
            services.AddSingleton<IRuleEvaluator>(sp => flaky.Wrapping(sp.GetRequiredService<CompiledRuleEvaluator>()));
        });

        var occurredAt = DateTimeOffset.UtcNow;
        var instance = new TriggerInstance("delivery-1", CoreTriggers.Webhook, new JsonObject { ["url"] = "ping" },
            new JsonObject { ["headers"] = new JsonObject(), ["body"] = new JsonObject() }, occurredAt, "delivery-1");
        await host.Services.GetRequiredService<TriggerDispatcher>().DispatchAsync(instance, CancellationToken.None);

        var letter = (await Eventually.ReturnsAsync(() => bus.ListDeadLettersAsync(StormQueues.TriggerInstances, 10, CancellationToken.None), l => l.Count == 1, what: "the dead letter")).Single();
        Assert.Equal("delivery-1", letter.MessageId);
        Assert.Equal("failed 3 deliveries; last error InvalidOperationException: the rules are being reloaded", letter.Reason);
        var marked = await Eventually.ReturnsAsync(() => TriggerInstanceAsync(audit), t => t?.Reason?.StartsWith("dead-lettered", StringComparison.Ordinal) == true, what: "the audit marked");
        Assert.Equal(TriggerInstanceStatus.ProcessingFailed, marked!.Status);
        Assert.Contains("failed 3 deliveries; last error InvalidOperationException: the rules are being reloaded (storm dead-letter replay delivery-1 runs it again)", marked.Reason, StringComparison.Ordinal);
        Assert.Equal(3, flaky.Calls);

        flaky.Broken = false;
        var replayed = await host.Api.ReplayDeadLettersAsync(new JsonObject { ["id"] = "delivery-1" }, TestCallers.Admin, CancellationToken.None);
        Assert.Equal(200, replayed.StatusCode);
        Assert.Equal(1, replayed.Body!["replayed"]!.GetValue<int>());
        var execution = await host.WaitForExecutionAsync(StormIds.ForRuleEnforcement("delivery-1", "examples.ping", occurredAt));
        Assert.Equal("succeeded", execution.Status);
        Assert.Equal(TriggerInstanceStatus.Processed, (await Eventually.ReturnsAsync(() => TriggerInstanceAsync(audit), t => t?.Status == TriggerInstanceStatus.Processed))!.Status);

        var again = await host.Api.ReplayDeadLettersAsync(new JsonObject { ["id"] = "delivery-1" }, TestCallers.Admin, CancellationToken.None);
        Assert.Equal(404, again.StatusCode);
        Assert.Empty(await bus.ListDeadLettersAsync(StormQueues.TriggerInstances, 10, CancellationToken.None));
    }

    private static async Task<TriggerInstanceRecord?> TriggerInstanceAsync(IAuditStore audit) =>
        (await audit.QueryTriggerInstancesAsync(new AuditQuery(), CancellationToken.None)).SingleOrDefault(t => t.Id == "delivery-1");

    private sealed class FlakyEvaluator
    {
        private int _calls;

        public volatile bool Broken = true;

        public int Calls => _calls;

        public IRuleEvaluator Wrapping(IRuleEvaluator inner) => new Evaluator(this, inner);

        private sealed class Evaluator(FlakyEvaluator flaky, IRuleEvaluator inner) : IRuleEvaluator
        {
            public IReadOnlyList<RuleDefinition> Evaluate(string triggerType, JsonObject? triggerParameters, JsonNode? payload)
            {
                if (flaky.Broken)
                {
                    Interlocked.Increment(ref flaky._calls);
                    throw new InvalidOperationException("the rules are being reloaded");
                }

                return inner.Evaluate(triggerType, triggerParameters, payload);
            }
        }
    }
}
