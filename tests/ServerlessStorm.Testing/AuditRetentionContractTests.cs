using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Triggers;
using Xunit;

namespace ServerlessStorm.Testing;

/// <summary>
/// What retention must do with every audit store (in memory, Table Storage, written behind): delete whole expired
/// days — trigger instances, rule enforcements, executions, traces, delivery claims, live output — and nothing of the
/// days kept, and never an execution that has not finished, nor its workflow's records or its cause.
/// </summary>
public abstract class AuditRetentionContractTests
{
    protected static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);
    protected static readonly DateTimeOffset Expired = new(2026, 10, 1, 9, 30, 0, TimeSpan.Zero);
    protected static readonly DateTimeOffset Kept = Expired.AddDays(1);

    /// <summary>A store and an output store no other test uses.</summary>
    protected abstract Task<(IAuditStore Audit, IExecutionOutputStore Output)> CreateAsync();

    /// <summary>Whether the store's delivery claims live and leave with their day (a written-behind audit keeps its own, which expire on their own).</summary>
    protected virtual bool KeepsDeliveryClaimsWithTheAudit => true;

    protected static AuditRetention Retention(IAuditStore audit, IExecutionOutputStore output, int days = 30) =>
        new(audit, output, Options.Create(new StormOptions { Retention = days }), new ManualTimeProvider(Now), NullLogger<AuditRetention>.Instance);

    /// <summary>One day's worth of what a webhook and its rule leave, plus a run of one's own, with the ids to look for.</summary>
    protected sealed record Day(string TraceTag, string TriggerInstanceId, string DeliveryId, string RuleExecutionId, string RunId);

    /// <summary>Records a day: a webhook (generated id) whose rule ran an action, a webhook with a delivery id, and an API run with a large result and output.</summary>
    protected static async Task<Day> RecordDayAsync(IAuditStore audit, IExecutionOutputStore output, DateTimeOffset at, string name)
    {
        var tag = $"trace-{name}";
        var instance = StormIds.New(at);
        var delivery = $"delivery-{name}";
        await audit.RecordTriggerInstanceAsync(TriggerInstance(instance, at, tag), CancellationToken.None);
        Assert.Equal(at, await audit.FirstAcceptedAsync(delivery, at, CancellationToken.None));
        await audit.RecordTriggerInstanceAsync(TriggerInstance(delivery, at, $"{tag}-delivered"), CancellationToken.None);

        var ruleExecution = StormIds.ForRuleEnforcement(instance, "examples.on_push", at);
        await CreateAsync(audit, Execution(ruleExecution, at, tag, ExecutionStatus.Succeeded, cause: instance, rule: "examples.on_push"));
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance, "examples.on_push", ruleExecution, RuleEnforcementRecord.Succeeded, null,
            at.AddSeconds(1), tag, "stanley", at), CancellationToken.None);
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance, "examples.broken", null, RuleEnforcementRecord.Failed, "no such action",
            at.AddSeconds(1), tag, "stanley", at), CancellationToken.None);

        var run = StormIds.New(at.AddMinutes(5));
        await CreateAsync(audit, Execution(run, at.AddMinutes(5), tag, ExecutionStatus.Succeeded, result: new JsonObject { ["stdout"] = new string('x', 70_000) }));
        await output.AppendAsync(run, [new OutputChunk(0, "stdout", $"output of {name}\n")], CancellationToken.None);
        return new Day(tag, instance, delivery, ruleExecution, run);
    }

    [Fact]
    public async Task Purge_DeletesTheExpiredDaysRecords_AndNothingOfTheDaysKept()
    {
        var (audit, output) = await CreateAsync();
        var expired = await RecordDayAsync(audit, output, Expired, "old");
        var kept = await RecordDayAsync(audit, output, Kept, "new");

        var summary = await Retention(audit, output).PurgeAsync(DateOnly.FromDateTime(Kept.UtcDateTime), budget: null, progress: null, CancellationToken.None);

        var day = Assert.Single(summary.Days);
        Assert.Equal(DateOnly.FromDateTime(Expired.UtcDateTime), day.Day);
        Assert.Empty(day.KeptExecutions);
        if (!day.DeletedWhole)
        {
            Assert.Equal((2, 2, 2, 1), (day.TriggerInstances, day.RuleEnforcements, day.Executions, day.OutputRows));
        }
        Assert.False(summary.More);

        Assert.Null(await audit.GetExecutionAsync(expired.RuleExecutionId, CancellationToken.None));
        Assert.Null(await audit.GetExecutionAsync(expired.RunId, CancellationToken.None));
        var gone = await audit.GetTraceAsync(expired.TraceTag, CancellationToken.None);
        Assert.Empty(gone.TriggerInstances);
        Assert.Empty(gone.RuleEnforcements);
        Assert.Empty(gone.Executions);
        Assert.Empty(await output.ReadAsync(expired.RunId, 0, CancellationToken.None));
        var window = new AuditQuery(From: Expired.AddDays(-1), To: Kept.AddDays(1), Limit: 100);
        Assert.DoesNotContain(await audit.QueryExecutionsAsync(window, CancellationToken.None), e => e.Id == expired.RunId || e.Id == expired.RuleExecutionId);
        Assert.DoesNotContain(await audit.QueryTriggerInstancesAsync(window, CancellationToken.None), t => t.Id == expired.TriggerInstanceId || t.Id == expired.DeliveryId);
        if (KeepsDeliveryClaimsWithTheAudit)
        {
            Assert.Equal(Now, await audit.FirstAcceptedAsync(expired.DeliveryId, Now, CancellationToken.None)); // a new delivery now
        }

        var trace = await audit.GetTraceAsync(kept.TraceTag, CancellationToken.None);
        Assert.Equal([kept.TriggerInstanceId], trace.TriggerInstances.Select(t => t.Id));
        Assert.Equal(["examples.broken", "examples.on_push"], trace.RuleEnforcements.Select(e => e.RuleRef).Order());
        Assert.Equal(new[] { kept.RuleExecutionId, kept.RunId }.Order(), trace.Executions.Select(e => e.Id).Order());
        Assert.Equal(70_000, (await audit.GetExecutionAsync(kept.RunId, CancellationToken.None))!.Result!["stdout"]!.GetValue<string>().Length);
        Assert.Equal("output of new\n", Assert.Single(await output.ReadAsync(kept.RunId, 0, CancellationToken.None)).Text);
        if (KeepsDeliveryClaimsWithTheAudit)
        {
            Assert.Equal(Kept, await audit.FirstAcceptedAsync(kept.DeliveryId, Now, CancellationToken.None));
        }

        Assert.Equal(2, (await audit.QueryTriggerInstancesAsync(window, CancellationToken.None)).Count);
        Assert.Equal([DateOnly.FromDateTime(Kept.UtcDateTime)], await audit.DaysBeforeAsync(DateOnly.FromDateTime(Now.UtcDateTime), CancellationToken.None));
    }

    [Fact]
    public async Task Purge_KeepsAnUnfinishedWorkflow_ItsFinishedTasks_AndItsCause_UntilItFinishes()
    {
        var (audit, output) = await CreateAsync();
        var tag = "trace-workflow";
        var instance = StormIds.New(Expired);
        await audit.RecordTriggerInstanceAsync(TriggerInstance(instance, Expired, tag), CancellationToken.None);
        var workflow = StormIds.ForRuleEnforcement(instance, "examples.deploy", Expired);
        await CreateAsync(audit, Execution(workflow, Expired, tag, ExecutionStatus.Running, cause: instance, rule: "examples.deploy"));
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance, "examples.deploy", workflow, RuleEnforcementRecord.Succeeded, null,
            Expired, tag, "stanley", Expired), CancellationToken.None);
        var task = StormIds.New(Expired.AddMinutes(1));
        await CreateAsync(audit, Execution(task, Expired.AddMinutes(1), tag, ExecutionStatus.Succeeded, parent: workflow));
        await output.AppendAsync(task, [new OutputChunk(0, "stdout", "built\n")], CancellationToken.None);
        // A task of the same workflow created the next day (past the purge date too), and an unrelated finished run.
        var lateTask = StormIds.New(Kept);
        await CreateAsync(audit, Execution(lateTask, Kept, tag, ExecutionStatus.Succeeded, parent: workflow));
        var finished = StormIds.New(Expired.AddMinutes(2));
        await CreateAsync(audit, Execution(finished, Expired.AddMinutes(2), "trace-other", ExecutionStatus.Failed));
        var retention = Retention(audit, output);

        var first = await retention.PurgeAsync(DateOnly.FromDateTime(Now.UtcDateTime), null, null, CancellationToken.None);

        Assert.Equal(3, first.KeptExecutions);
        Assert.Equal(1, first.Executions);
        Assert.Null(await audit.GetExecutionAsync(finished, CancellationToken.None));
        var trace = await audit.GetTraceAsync(tag, CancellationToken.None);
        Assert.Equal([instance], trace.TriggerInstances.Select(t => t.Id));
        Assert.Equal(workflow, Assert.Single(trace.RuleEnforcements).ExecutionId);
        Assert.Equal(new[] { workflow, task, lateTask }.Order(), trace.Executions.Select(e => e.Id).Order());
        Assert.Equal("built\n", Assert.Single(await output.ReadAsync(task, 0, CancellationToken.None)).Text);

        var record = (await audit.GetExecutionAsync(workflow, CancellationToken.None))!;
        record.Transition(ExecutionStatus.Succeeded, Expired.AddHours(1));
        Assert.True(await audit.TryUpdateExecutionAsync(record, CancellationToken.None));
        var second = await retention.PurgeAsync(DateOnly.FromDateTime(Now.UtcDateTime), null, null, CancellationToken.None);

        Assert.Equal(0, second.KeptExecutions);
        if (second.DaysDeletedWhole == 0)
        {
            Assert.Equal((3, 1, 1), (second.Executions, second.TriggerInstances, second.RuleEnforcements));
        }
        var empty = await audit.GetTraceAsync(tag, CancellationToken.None);
        Assert.Empty(empty.TriggerInstances);
        Assert.Empty(empty.Executions);
        Assert.Empty(await output.ReadAsync(task, 0, CancellationToken.None));
        Assert.Empty(await audit.DaysBeforeAsync(DateOnly.FromDateTime(Now.UtcDateTime), CancellationToken.None));
    }

    [Fact]
    public async Task PurgeExpired_TakesTheDaysOlderThanTheRetention_AndZeroDaysKeepsEverything()
    {
        var (audit, output) = await CreateAsync();
        var old = await RecordDayAsync(audit, output, Now.AddDays(-31), "31-days");
        var recent = await RecordDayAsync(audit, output, Now.AddDays(-29), "29-days");

        Assert.Null(await Retention(audit, output, days: 0).PurgeExpiredAsync(CancellationToken.None));
        Assert.NotNull(await audit.GetExecutionAsync(old.RunId, CancellationToken.None));

        var summary = await Retention(audit, output, days: 30).PurgeExpiredAsync(CancellationToken.None);

        Assert.Equal([DateOnly.FromDateTime(Now.AddDays(-31).UtcDateTime)], summary!.Days.Select(d => d.Day));
        Assert.Null(await audit.GetExecutionAsync(old.RunId, CancellationToken.None));
        Assert.NotNull(await audit.GetExecutionAsync(recent.RunId, CancellationToken.None));
    }

    [Fact]
    public async Task AnEnforcementWhoseTriggerInstanceWasNeverRecorded_IsInItsTrace_AndLeavesWithItsDay()
    {
        var (audit, output) = await CreateAsync();
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord("replayed-1", "examples.on_push", null, RuleEnforcementRecord.Failed, "no such action",
            Expired, "trace-replayed", "stanley", Expired), CancellationToken.None);

        var before = await audit.GetTraceAsync("trace-replayed", CancellationToken.None);
        await Retention(audit, output).PurgeAsync(DateOnly.FromDateTime(Kept.UtcDateTime), null, null, CancellationToken.None);
        var after = await audit.GetTraceAsync("trace-replayed", CancellationToken.None);

        Assert.Equal("examples.on_push", Assert.Single(before.RuleEnforcements).RuleRef);
        Assert.Empty(after.RuleEnforcements);
    }

    protected static TriggerInstanceRecord TriggerInstance(string id, DateTimeOffset at, string tag) => new()
    {
        Id = id,
        TriggerType = CoreTriggers.Webhook,
        TriggerParameters = new JsonObject { ["url"] = "github" },
        Payload = new JsonObject { ["body"] = new JsonObject { ["ref"] = "refs/heads/main" } },
        OccurredAt = at,
        TraceTag = tag,
        Status = TriggerInstanceStatus.Processed,
        User = "alice",
    };

    protected static ExecutionRecord Execution(string id, DateTimeOffset at, string tag, string status,
        string? cause = null, string? rule = null, string? parent = null, JsonNode? result = null) => new()
    {
        Id = id,
        TriggerInstanceId = cause,
        RuleRef = rule,
        ParentId = parent,
        WorkflowTask = parent is null ? null : "task",
        Result = result,
        ActionRef = "core.local",
        RunnerType = "local-shell-cmd",
        TraceTag = tag,
        Parameters = new JsonObject { ["cmd"] = "echo hi" },
        Status = status,
        StartTimestamp = at,
        EndTimestamp = ExecutionStatus.IsTerminal(status) ? at.AddSeconds(2) : null,
        History = [new StatusChange(status, at)],
    };

    private static async Task CreateAsync(IAuditStore audit, ExecutionRecord record) =>
        Assert.True(await audit.TryCreateExecutionAsync(record, CancellationToken.None));
}
