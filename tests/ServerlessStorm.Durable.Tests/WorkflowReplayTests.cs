using System.Text.Json.Nodes;
using DurableTask.Core;
using DurableTask.Core.Command;
using DurableTask.Core.History;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Newtonsoft.Json.Linq;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Durable.Tests;

/// <summary>
/// Determinism, Durable's way: a workflow runs on the real task hub, its recorded history is read back, and the
/// orchestrator is replayed over it episode by episode with DurableTask.Core's own executor. At every episode it must
/// decide exactly what it decided when it ran (the activities, in the same order under the same ids, the timers with
/// the same fire times, and the completion with the same output). A changed workflow replayed over the same history
/// must be caught.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WorkflowReplayTests(AzuriteFixture azurite)
{
    private const string Workflow = """
        version: 1.0
        input: [hosts]
        vars: [{attempts: 0}]
        tasks:
          start:
            action: core.noop
            next: [{do: [probe, note]}]
          probe:
            with: {items: "h in <% ctx(hosts) %>", concurrency: 2}
            action: core.echo
            input: {message: "probe <% item(h) %>"}
            next: [{when: "<% succeeded() %>", publish: [{probed: "<% len(result()) %>"}], do: join}]
          note:
            action: core.local
            input: {cmd: "echo noted"}
            retry: {when: "<% failed() %>", count: 1, delay: 1}
            next: [{publish: [{note: "<% result().stdout %>"}], do: join}]
          join:
            join: all
            delay: 1
            action: core.echo
            input: {message: "<% ctx(probed) %> probed, <% ctx(note) %>"}
            next: [{publish: [{summary: "<% result().stdout %>"}]}]
        output: [{summary: "<% ctx(summary) %>"}]
        """;

    [Fact]
    public async Task ReplayingTheRecordedHistory_MakesTheSameDecisionsAtEveryStep_AndAChangedWorkflowIsCaught()
    {
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/fanout.yaml", "name: fanout\nrunner_type: orquesta\nentry_point: workflows/fanout.yaml\nparameters:\n  hosts: {type: array}\n");
        packs.Write("wf/actions/workflows/fanout.yaml", Workflow);
        var (host, hub) = await WorkflowHosts.StartAsync(azurite, packs.Root);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.fanout",
            new JsonObject { ["hosts"] = new JsonArray("a", "b", "c", "d", "e") }, null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        Assert.Equal("5 probed, noted", workflow.Result!["output"]!["summary"]!.GetValue<string>());
        var history = Parse((await hub.GetHistoryAsync(workflow.Id))!);

        var episodes = Replay(history, original: null);

        // 1 start + 5 probes + note + join + the finish activity, one timer (join's delay), and the completion.
        Assert.Equal(9, episodes.Sum(e => e.Decided.Count(d => d is ScheduleTaskOrchestratorAction)));
        Assert.Equal(1, episodes.Sum(e => e.Decided.Count(d => d is CreateTimerOrchestratorAction)));
        Assert.All(episodes, e => Assert.Equal(e.Recorded, e.Decided.Select(Describe)));
        Assert.True(episodes.Count >= 5, $"only {episodes.Count} episodes recorded");

        // The same history with the workflow changed (how many items run at once) no longer replays to the same decisions.
        var changed = Replay(history, original: ("concurrency: 2", "concurrency: 5"));
        Assert.Contains(changed, e => !e.Recorded.SequenceEqual(e.Decided.Select(Describe)) || e.Failure is not null);
    }

    private sealed record Episode(IReadOnlyList<string> Recorded, IReadOnlyList<OrchestratorAction> Decided, string? Failure);

    private static bool IsDecision(HistoryEvent e) =>
        e is TaskScheduledEvent or TimerCreatedEvent or SubOrchestrationInstanceCreatedEvent or ExecutionCompletedEvent;

    // For each episode (an OrchestratorStarted and what followed it), replay everything before it plus its inputs,
    // and take what the orchestrator decides anew.
    private static List<Episode> Replay(IReadOnlyList<HistoryEvent> history, (string From, string To)? original)
    {
        var episodes = new List<Episode>();
        var starts = history.Select((e, i) => (e, i)).Where(x => x.e is OrchestratorStartedEvent).Select(x => x.i).ToList();
        for (var n = 0; n < starts.Count; n++)
        {
            var begin = starts[n];
            var end = n + 1 < starts.Count ? starts[n + 1] : history.Count;
            var episode = history.Skip(begin).Take(end - begin).ToList();
            var state = new OrchestrationRuntimeState(history.Take(begin).Select(e => Changed(e, original)).ToList());
            foreach (var input in episode.Where(e => !IsDecision(e) && e is not OrchestratorCompletedEvent))
            {
                state.AddEvent(Changed(input, original));
            }

            var recorded = episode.Where(IsDecision).Select(Describe).ToList();
            var orchestration = WorkflowTaskHub.Orchestration(WorkflowOrchestrator.Name, () => new WorkflowOrchestrator()).Create();
            try
            {
                var result = new TaskOrchestrationExecutor(state, orchestration, BehaviorOnContinueAsNew.Carryover, ErrorPropagationMode.SerializeExceptions).Execute();
                episodes.Add(new Episode(recorded, [.. result.Actions], null));
            }
            catch (Exception ex) when (original is not null)
            {
                episodes.Add(new Episode(recorded, [], ex.GetType().Name + ": " + ex.Message));
            }
        }

        return episodes;
    }

    private static HistoryEvent Changed(HistoryEvent e, (string From, string To)? change) =>
        change is { } c && e is ExecutionStartedEvent started
            ? new ExecutionStartedEvent(started.EventId, started.Input.Replace(c.From, c.To, StringComparison.Ordinal))
            {
                Name = started.Name, Version = started.Version, OrchestrationInstance = started.OrchestrationInstance, Timestamp = started.Timestamp,
            }
            : e;

    private static string Describe(HistoryEvent e) => e switch
    {
        TaskScheduledEvent t => $"activity {t.EventId} {t.Name}", // the history dump leaves activity inputs out
        TimerCreatedEvent t => $"timer {t.FireAt:O}",
        SubOrchestrationInstanceCreatedEvent s => $"sub-orchestration {s.Name} {s.InstanceId} {s.Input}",
        ExecutionCompletedEvent c => $"complete {c.OrchestrationStatus} {c.Result}",
        _ => e.EventType.ToString(),
    };

    private static string Describe(OrchestratorAction a) => a switch
    {
        ScheduleTaskOrchestratorAction t => $"activity {t.Id} {t.Name}",
        CreateTimerOrchestratorAction t => $"timer {t.FireAt:O}",
        CreateSubOrchestrationAction s => $"sub-orchestration {s.Name} {s.InstanceId} {s.Input}",
        OrchestrationCompleteOrchestratorAction c => $"complete {c.OrchestrationStatus} {c.Result}",
        _ => a.OrchestratorActionType.ToString(),
    };

    // The task hub's history dump names each event's type in EventType; each becomes its DurableTask.Core class.
    private static List<HistoryEvent> Parse(string json) =>
        [.. JArray.Parse(json).Cast<JObject>().Select(e => (HistoryEvent)e.ToObject(TypeOf((EventType)Enum.Parse(typeof(EventType), e["EventType"]!.ToString())))!)];

    private static Type TypeOf(EventType type) => type switch
    {
        EventType.ExecutionStarted => typeof(ExecutionStartedEvent),
        EventType.ExecutionCompleted => typeof(ExecutionCompletedEvent),
        EventType.OrchestratorStarted => typeof(OrchestratorStartedEvent),
        EventType.OrchestratorCompleted => typeof(OrchestratorCompletedEvent),
        EventType.TaskScheduled => typeof(TaskScheduledEvent),
        EventType.TaskCompleted => typeof(TaskCompletedEvent),
        EventType.TaskFailed => typeof(TaskFailedEvent),
        EventType.TimerCreated => typeof(TimerCreatedEvent),
        EventType.TimerFired => typeof(TimerFiredEvent),
        EventType.SubOrchestrationInstanceCreated => typeof(SubOrchestrationInstanceCreatedEvent),
        EventType.SubOrchestrationInstanceCompleted => typeof(SubOrchestrationInstanceCompletedEvent),
        EventType.SubOrchestrationInstanceFailed => typeof(SubOrchestrationInstanceFailedEvent),
        EventType.EventRaised => typeof(EventRaisedEvent),
        EventType.ExecutionSuspended => typeof(ExecutionSuspendedEvent),
        EventType.ExecutionResumed => typeof(ExecutionResumedEvent),
        EventType.ExecutionTerminated => typeof(ExecutionTerminatedEvent),
        _ => throw new NotSupportedException($"history event {type} is not expected in a workflow's history"),
    };
}
