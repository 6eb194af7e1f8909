using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>The engine's metrics, recorded with the tags the portal's queries group by.</summary>
public sealed class MetricsTests : IDisposable
{
    // Tests run side by side in this process: a measurement is this test's when made on its own async flow, or
    // when it names this test's own rule or action.
    private static readonly AsyncLocal<bool> Mine = new();

    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Name, double Value, Dictionary<string, object?> Tags, bool Mine)> _measurements = new();
    private readonly TempPacks _packs = new TempPacks().WithPack("metered");

    public MetricsTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == StormMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
        _measurements.Enqueue((instrument.Name, value, new Dictionary<string, object?>(tags.ToArray()), Mine.Value));

    public void Dispose()
    {
        _listener.Dispose();
        _packs.Dispose();
    }

    private IReadOnlyList<(double Value, Dictionary<string, object?> Tags)> Named(string name, string tag, string value) =>
        [.. _measurements.Where(m => m.Name == name && Equals(m.Tags.GetValueOrDefault(tag), value)).Select(m => (m.Value, m.Tags))];

    [Fact]
    public async Task AnEventThroughThePipeline_CountsItsRuleAndItsExecution_AndTimesItsWaitAndItsRun()
    {
        _packs.Write("metered/actions/ok.yaml", "name: ok\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: 'echo ok'}\n");
        _packs.Write("metered/rules/on_hook.yaml", "name: on_hook\ntrigger: {type: core.st2.webhook, parameters: {url: metered}}\naction: {ref: metered.ok}\n");
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), _packs.Root);

        Mine.Value = true;
        var accepted = await host.Api.PostWebhookAsync("metered", [], Encoding.UTF8.GetBytes("{}"), TestCallers.Admin, CancellationToken.None);
        var refused = await host.Api.PostWebhookAsync("metered", [], Encoding.UTF8.GetBytes("{not json"), TestCallers.Admin, CancellationToken.None);
        Mine.Value = false;
        await Eventually.TrueAsync(() => Named(StormMetrics.ExecutionsFinishedName, StormMetrics.ActionTag, "metered.ok").Count > 0, what: "the execution to finish");

        Assert.Equal((202, 400), (accepted.StatusCode, refused.StatusCode));
        Assert.Single(_measurements, m => m.Mine && m.Name == StormMetrics.TriggersAcceptedName && (string?)m.Tags[StormMetrics.TriggerTag] == "core.st2.webhook");
        Assert.Single(_measurements, m => m.Mine && m.Name == StormMetrics.TriggersRejectedName && (int?)m.Tags[StormMetrics.StatusTag] == 400);
        Assert.Single(Named(StormMetrics.RulesMatchedName, StormMetrics.RuleTag, "metered.on_hook"));
        Assert.Single(Named(StormMetrics.ExecutionsStartedName, StormMetrics.ActionTag, "metered.ok"));
        var finished = Assert.Single(Named(StormMetrics.ExecutionsFinishedName, StormMetrics.ActionTag, "metered.ok"));
        Assert.Equal("succeeded", finished.Tags[StormMetrics.StatusTag]);
        Assert.True(Assert.Single(Named(StormMetrics.ExecutionDurationName, StormMetrics.ActionTag, "metered.ok")).Value > 0);
        Assert.True(Assert.Single(Named(StormMetrics.QueueWaitName, StormMetrics.ActionTag, "metered.ok")).Value >= 0);
    }

    [Fact]
    public async Task ARuleThatCannotBeEnforced_IsCounted()
    {
        _packs.Write("metered/rules/broken.yaml", "name: broken\ntrigger: {type: core.st2.webhook, parameters: {url: broken}}\naction: {ref: core.local, parameters: {cmd: '{{ trigger.body.nothing.deeper }}'}}\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);

        await host.Api.PostWebhookAsync("broken", [], Encoding.UTF8.GetBytes("{}"), TestCallers.Admin, CancellationToken.None);

        await Eventually.TrueAsync(() => Named(StormMetrics.EnforcementsFailedName, StormMetrics.RuleTag, "metered.broken").Count == 1, what: "the failed enforcement counted");
    }
}
