using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
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
        var run = Assert.Single(Named(StormMetrics.RunTimeName, StormMetrics.ActionTag, "metered.ok"));
        Assert.Equal("succeeded", run.Tags[StormMetrics.StatusTag]);
        Assert.InRange(run.Value, double.Epsilon, Assert.Single(Named(StormMetrics.ExecutionDurationName, StormMetrics.ActionTag, "metered.ok")).Value);
    }

    [Fact]
    public async Task AWorkflowTask_IsCountedUnderItsWorkflowsAction_WithItsStatus_AndTimedWhenItRan()
    {
        _packs.Write("metered/actions/ok.yaml", "name: ok\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {default: 'echo ok'}\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);
        var workflowRef = $"metered.flow_{Guid.NewGuid():N}";
        var workflow = new ExecutionRecord
        {
            Id = $"wf-{Guid.NewGuid():N}", ActionRef = workflowRef, RunnerType = Workflows.WorkflowDefinition.RunnerType, TraceTag = "metered-flow", Parameters = [],
            Status = ExecutionStatus.Running, StartTimestamp = DateTimeOffset.UtcNow,
        };
        Assert.True(await host.Audit.TryCreateExecutionAsync(workflow, CancellationToken.None));
        var tasks = host.Services.GetRequiredService<Workflows.WorkflowTaskRunner>();

        var ran = await tasks.RunAsync(workflow.Id, workflow.TraceTag, "greet.1", "greet", "metered.ok", [], CancellationToken.None);
        var missing = await tasks.RunAsync(workflow.Id, workflow.TraceTag, "oops.1", "oops", "metered.nothing", [], CancellationToken.None);

        Assert.Equal((ExecutionStatus.Succeeded, ExecutionStatus.Failed), (ran.Status, missing.Status));
        Assert.Equal([ExecutionStatus.Failed, ExecutionStatus.Succeeded],
            Named(StormMetrics.WorkflowTasksName, StormMetrics.WorkflowTag, workflowRef).Select(m => (string)m.Tags[StormMetrics.StatusTag]!).Order());
        var timed = Assert.Single(Named(StormMetrics.WorkflowTaskDurationName, StormMetrics.WorkflowTag, workflowRef)); // only the one that ran
        Assert.Equal(ExecutionStatus.Succeeded, timed.Tags[StormMetrics.StatusTag]);
        Assert.True(timed.Value > 0);
    }

    [Fact]
    public void RunTime_IsFromTheLastStart_AndNotRecordedForAnExecutionThatNeverRan()
    {
        var start = DateTimeOffset.UnixEpoch;
        ExecutionRecord Execution(string action, params (string Status, int Second)[] history)
        {
            var record = new ExecutionRecord
            {
                Id = $"{action}-1", ActionRef = action, RunnerType = "local-shell-cmd", TraceTag = "t", Parameters = [],
                Status = ExecutionStatus.Requested, StartTimestamp = start,
            };
            foreach (var (status, second) in history)
            {
                record.Transition(status, start.AddSeconds(second));
            }

            return record;
        }

        // Its first worker died while running it; another took it over at 10 s and finished at 15 s.
        var takenOver = $"metered.taken_over_{Guid.NewGuid():N}";
        StormMetrics.ExecutionFinished(Execution(takenOver, (ExecutionStatus.Scheduled, 1), (ExecutionStatus.Running, 2), (ExecutionStatus.Running, 10), (ExecutionStatus.Failed, 15)));
        var canceled = $"metered.canceled_{Guid.NewGuid():N}";
        StormMetrics.ExecutionFinished(Execution(canceled, (ExecutionStatus.Delayed, 1), (ExecutionStatus.Canceled, 4)));

        var run = Assert.Single(Named(StormMetrics.RunTimeName, StormMetrics.ActionTag, takenOver));
        Assert.Equal((5, ExecutionStatus.Failed), (run.Value, run.Tags[StormMetrics.StatusTag]));
        Assert.Equal(15, Assert.Single(Named(StormMetrics.ExecutionDurationName, StormMetrics.ActionTag, takenOver)).Value);
        Assert.Empty(Named(StormMetrics.RunTimeName, StormMetrics.ActionTag, canceled));
        Assert.Single(Named(StormMetrics.ExecutionsFinishedName, StormMetrics.ActionTag, canceled));
    }

    [Fact]
    public async Task ARuleThatCannotBeEnforced_IsCounted()
    {
        _packs.Write("metered/rules/broken.yaml", "name: broken\ntrigger: {type: core.st2.webhook, parameters: {url: broken}}\naction: {ref: core.local, parameters: {cmd: '{{ trigger.body.nothing.deeper }}'}}\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new InMemoryMessageBus(), _packs.Root);

        await host.Api.PostWebhookAsync("broken", [], Encoding.UTF8.GetBytes("{}"), TestCallers.Admin, CancellationToken.None);

        await Eventually.TrueAsync(() => Named(StormMetrics.EnforcementsFailedName, StormMetrics.RuleTag, "metered.broken").Count == 1, what: "the failed enforcement counted");
    }

    [Fact]
    public async Task AnExecutionCanceledBeforeItRuns_IsCountedFinished_WithoutARunTime()
    {
        var action = $"waits_{Guid.NewGuid():N}";
        _packs.Write($"metered/actions/{action}.yaml", $"name: {action}\nrunner_type: local-shell-cmd\nparameters:\n  cmd: {{default: 'echo ok'}}\n");
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), new UndeliveredExecutions(new InMemoryMessageBus()), _packs.Root);
        var executions = host.Services.GetRequiredService<ExecutionService>();

        var requested = await executions.RunAsync($"metered.{action}", [], null, TestCallers.Admin.User, CancellationToken.None);
        var canceled = await executions.CancelAsync(requested.Id, CancellationToken.None);

        Assert.Equal(ExecutionStatus.Canceled, canceled.Status);
        Assert.Equal(ExecutionStatus.Canceled, Assert.Single(Named(StormMetrics.ExecutionsFinishedName, StormMetrics.ActionTag, $"metered.{action}")).Tags[StormMetrics.StatusTag]);
        Assert.Single(Named(StormMetrics.ExecutionDurationName, StormMetrics.ActionTag, $"metered.{action}"));
        Assert.Empty(Named(StormMetrics.RunTimeName, StormMetrics.ActionTag, $"metered.{action}"));
    }

    [Fact]
    public async Task TheBacklogSampler_ReportsEachQueuesDepth_AndHowLongItsOldestMessageHasWaited()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())); // the bus keeps milliseconds
        var directory = Directory.CreateTempSubdirectory("storm-metrics-").FullName;
        var (busy, idle) = ($"busy-{Guid.NewGuid():N}", $"idle-{Guid.NewGuid():N}");
        try
        {
            await using var bus = SqliteMessageBus.Open(directory, time: clock);
            for (var i = 0; i < 3; i++)
            {
                await bus.PublishAsync(busy, new BusMessage($"m{i}", Encoding.UTF8.GetBytes("{}")), CancellationToken.None);
            }

            clock.Advance(TimeSpan.FromSeconds(42));
            var sampler = new BusBacklogSampler(bus, Options.Create(new BusOptions()), clock) { Queues = [busy, idle] };

            await sampler.SampleAsync(CancellationToken.None);
            _listener.RecordObservableInstruments();

            Assert.Equal(3, Assert.Single(Named(StormMetrics.QueueDepthName, StormMetrics.QueueTag, busy)).Value);
            Assert.Equal(42, Assert.Single(Named(StormMetrics.QueueOldestAgeName, StormMetrics.QueueTag, busy)).Value);
            Assert.Equal(0, Assert.Single(Named(StormMetrics.QueueDepthName, StormMetrics.QueueTag, idle)).Value);
            Assert.Equal(0, Assert.Single(Named(StormMetrics.QueueOldestAgeName, StormMetrics.QueueTag, idle)).Value);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task ABacklogSampleThatFails_LeavesTheQueuesGaugesEmpty_RatherThanStale()
    {
        var queue = $"flaky-{Guid.NewGuid():N}";
        var bus = new FlakyBacklogBus(new InMemoryMessageBus());
        var sampler = new BusBacklogSampler(bus, Options.Create(new BusOptions()), TimeProvider.System) { Queues = [queue] };
        await bus.PublishAsync(queue, new BusMessage("m", Encoding.UTF8.GetBytes("{}")), CancellationToken.None);
        await sampler.SampleAsync(CancellationToken.None);
        _listener.RecordObservableInstruments();
        Assert.Equal(1, Assert.Single(Named(StormMetrics.QueueDepthName, StormMetrics.QueueTag, queue)).Value);

        bus.Failing = true;
        await sampler.SampleAsync(CancellationToken.None);
        _measurements.Clear();
        _listener.RecordObservableInstruments();

        Assert.Empty(Named(StormMetrics.QueueDepthName, StormMetrics.QueueTag, queue));
        Assert.Empty(Named(StormMetrics.QueueOldestAgeName, StormMetrics.QueueTag, queue));
    }

    [Fact]
    public async Task EveryHostsComposition_SamplesTheEngineQueues_EveryInterval()
    {
        var bus = new FlakyBacklogBus(new InMemoryMessageBus());
        var services = InMemoryStorm.Compose(_packs.Root, bus: bus);
        services.Configure<BusOptions>(o => o.BacklogSampleInterval = TimeSpan.FromMilliseconds(50));
        await using var provider = services.BuildServiceProvider();
        var sampler = Assert.Single(provider.GetServices<IHostedService>().OfType<BusBacklogSampler>());

        await sampler.StartAsync(CancellationToken.None);
        try
        {
            // Two rounds: one at the start, then one each interval.
            await Eventually.TrueAsync(() => StormQueues.All.All(q => bus.Asked.GetValueOrDefault(q) >= 2), what: "every engine queue sampled twice");
        }
        finally
        {
            await sampler.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>A bus that never hands an execution request to a runner.</summary>
    private sealed class UndeliveredExecutions(IMessageBus inner) : DelegatingMessageBus(inner)
    {
        public override Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken) =>
            queue == StormQueues.Executions ? Task.CompletedTask : base.PublishAsync(queue, message, cancellationToken);
    }

    /// <summary>A bus whose backlog can be made to fail, and that counts the queues it is asked about.</summary>
    private sealed class FlakyBacklogBus(IMessageBus inner) : DelegatingMessageBus(inner)
    {
        public ConcurrentDictionary<string, int> Asked { get; } = new();

        public bool Failing { get; set; }

        public override Task<QueueBacklog> GetBacklogAsync(string queue, CancellationToken cancellationToken)
        {
            Asked.AddOrUpdate(queue, 1, (_, n) => n + 1);
            return Failing ? throw new InvalidOperationException("the queue service is unreachable") : base.GetBacklogAsync(queue, cancellationToken);
        }
    }
}
