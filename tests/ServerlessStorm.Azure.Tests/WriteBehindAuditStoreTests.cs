using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>The audit written behind the pipeline, over the Table audit in Azurite and a journal on disk.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class WriteBehindAuditStoreTests(AzuriteFixture azurite) : IDisposable
{
    private static readonly WriteBehindOptions Never = new() { FlushDelay = TimeSpan.FromHours(1) };

    private readonly string _journal = Path.Combine(Path.GetTempPath(), $"storm-journal-{Guid.NewGuid():N}");

    public void Dispose()
    {
        try
        {
            Directory.Delete(_journal, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private TableAuditStore NewTable() => new(Options.Create(azurite.NewStorageOptions()), TimeProvider.System);

    private WriteBehindAuditStore Open(IAuditStore stored, WriteBehindOptions options) =>
        new(stored, _journal, options, TimeProvider.System, NullLogger<WriteBehindAuditStore>.Instance);

    private static ExecutionRecord Execution(string id, DateTimeOffset at, string trace) => new()
    {
        Id = id,
        ActionRef = "core.noop",
        RunnerType = "noop",
        TraceTag = trace,
        TriggerInstanceId = "ti-" + trace,
        RuleRef = "examples.ping",
        Parameters = new JsonObject { ["n"] = 1 },
        Status = ExecutionStatus.Requested,
        StartTimestamp = at,
        History = [new StatusChange(ExecutionStatus.Requested, at)],
    };

    // What the pipeline writes for one webhook that runs one action to success.
    private static async Task<string> RunOneAsync(IAuditStore audit, string trace)
    {
        var now = DateTimeOffset.UtcNow;
        var instance = new TriggerInstanceRecord
        {
            Id = "ti-" + trace,
            TriggerType = CoreTriggers.Webhook,
            Payload = new JsonObject { ["body"] = new JsonObject { ["n"] = 1 } },
            OccurredAt = now,
            TraceTag = trace,
            Status = TriggerInstanceStatus.Pending,
        };
        await audit.RecordTriggerInstanceAsync(instance, CancellationToken.None);
        var record = Execution(StormIds.New(now), now, trace);
        Assert.True(await audit.TryCreateExecutionAsync(record, CancellationToken.None));
        await audit.RecordRuleEnforcementAsync(new RuleEnforcementRecord(instance.Id, "examples.ping", record.Id, RuleEnforcementRecord.Succeeded, null, now, trace), CancellationToken.None);
        await audit.UpdateTriggerInstanceStatusAsync(instance.Id, now, TriggerInstanceStatus.Processed, null, CancellationToken.None);
        record.Transition(ExecutionStatus.Running, now.AddMilliseconds(1));
        Assert.True(await audit.TryUpdateExecutionAsync(record, CancellationToken.None));
        record.Transition(ExecutionStatus.Succeeded, now.AddMilliseconds(2));
        record.Result = new JsonObject { ["ok"] = true };
        Assert.True(await audit.TryUpdateExecutionAsync(record, CancellationToken.None));
        return record.Id;
    }

    private static async Task AssertStoredWholeAsync(IAuditStore stored, string trace, string executionId)
    {
        var execution = await stored.GetExecutionAsync(executionId, CancellationToken.None);
        Assert.NotNull(execution);
        Assert.Equal(ExecutionStatus.Succeeded, execution.Status);
        Assert.Equal([ExecutionStatus.Requested, ExecutionStatus.Running, ExecutionStatus.Succeeded], execution.History.Select(h => h.Status));
        Assert.True(execution.Result!["ok"]!.GetValue<bool>());
        var recorded = await stored.GetTraceAsync(trace, CancellationToken.None);
        Assert.Equal(TriggerInstanceStatus.Processed, Assert.Single(recorded.TriggerInstances).Status);
        Assert.Equal(executionId, Assert.Single(recorded.RuleEnforcements).ExecutionId);
        Assert.Equal(executionId, Assert.Single(recorded.Executions).Id);
    }

    // As the journal reads its segments: a segment still being written is zeros after its last line; one deleted
    // between listing and reading was wholly stored (the flusher deletes a segment just after a flush completes).
    private string[] JournalLines() => [.. Directory.EnumerateFiles(_journal, "*.jsonl").SelectMany(path =>
    {
        try
        {
            using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
            return reader.ReadToEnd().Split('\0')[0].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (FileNotFoundException)
        {
            return [];
        }
    })];

    [Fact]
    public async Task Writes_AreReadFromMemoryAtOnce_StoredBehind_InTheirLatestState_AndTheJournalEmpties()
    {
        var stored = NewTable();
        await using var audit = Open(stored, Never);

        var id = await RunOneAsync(audit, "wb-trace-1");

        Assert.Equal(ExecutionStatus.Succeeded, (await audit.GetExecutionAsync(id, CancellationToken.None))!.Status);
        Assert.Null(await stored.GetExecutionAsync(id, CancellationToken.None)); // not yet stored
        Assert.Contains(JournalLines(), line => line.Contains(id, StringComparison.Ordinal));
        Assert.True(audit.Pending > 0);

        // A trace read waits for what was written before it, however long the gathering delay.
        var trace = await audit.GetTraceAsync("wb-trace-1", CancellationToken.None);
        Assert.Equal(ExecutionStatus.Succeeded, Assert.Single(trace.Executions).Status);
        await AssertStoredWholeAsync(stored, "wb-trace-1", id);
        Assert.Equal(0, audit.Pending);
        Assert.Empty(JournalLines());
    }

    [Fact]
    public async Task AStaleVersion_IsRefused_AsTheStoredAuditRefusesIt()
    {
        await using var audit = Open(NewTable(), Never);
        var record = Execution(StormIds.New(DateTimeOffset.UtcNow), DateTimeOffset.UtcNow, "wb-trace-2");
        Assert.True(await audit.TryCreateExecutionAsync(record, CancellationToken.None));
        Assert.False(await audit.TryCreateExecutionAsync(Execution(record.Id, record.StartTimestamp, "wb-trace-2"), CancellationToken.None));

        var first = (await audit.GetExecutionAsync(record.Id, CancellationToken.None))!;
        var stale = (await audit.GetExecutionAsync(record.Id, CancellationToken.None))!;
        first.Transition(ExecutionStatus.Running, DateTimeOffset.UtcNow);
        Assert.True(await audit.TryUpdateExecutionAsync(first, CancellationToken.None));
        stale.Transition(ExecutionStatus.Canceled, DateTimeOffset.UtcNow);
        Assert.False(await audit.TryUpdateExecutionAsync(stale, CancellationToken.None));
        Assert.Equal(ExecutionStatus.Running, (await audit.GetExecutionAsync(record.Id, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task AProcessThatDies_LeavesItsWritesInTheJournal_AndTheNextStartStoresThem()
    {
        var stored = NewTable();
        var dying = Open(stored, Never);
        var id = await RunOneAsync(dying, "wb-trace-3");
        await dying.StopAsIfKilledAsync(); // it dies with nothing stored
        Assert.Null(await stored.GetExecutionAsync(id, CancellationToken.None));

        await using var next = Open(stored, new WriteBehindOptions());
        await next.FlushAsync(CancellationToken.None);

        await AssertStoredWholeAsync(stored, "wb-trace-3", id);
        Assert.Equal(ExecutionStatus.Succeeded, (await next.GetExecutionAsync(id, CancellationToken.None))!.Status);
        Assert.Empty(JournalLines());
    }

    [Fact]
    public async Task ASecondAuditOnAJournalInUse_IsRefused_NamingTheFolder_AndTheFirstLosesNothing()
    {
        var stored = NewTable();
        var first = Open(stored, Never);
        var id = await RunOneAsync(first, "wb-trace-9");

        var refused = Assert.Throws<AuditJournalInUseException>(() => Open(stored, Never));
        Assert.Contains(Path.GetFullPath(_journal), refused.Message, StringComparison.Ordinal);
        Assert.Single(Directory.EnumerateFiles(_journal, "*.jsonl")); // the refused one made no segment of its own

        // The first one still owns its journal: closing it stores everything and empties the journal.
        await first.DisposeAsync();
        await AssertStoredWholeAsync(stored, "wb-trace-9", id);
        Assert.Empty(JournalLines());

        // A journal left by a process that died can be opened again, and what it holds is taken up.
        var dying = Open(stored, Never);
        await RunOneAsync(dying, "wb-trace-10");
        await dying.StopAsIfKilledAsync();
        await using var next = Open(stored, Never);
        Assert.True(next.Pending > 0);
    }

    [Fact]
    public void WithDotNetsFileLocksSwitchedOff_TheJournalRefusesToOpen_RatherThanGoUnlocked()
    {
        // Only this collection opens journals, and .NET read its own setting long before: only the check sees it.
        AppContext.SetSwitch("System.IO.DisableFileLocking", true);
        try
        {
            var error = Assert.Throws<AuditJournalException>(() => AuditJournal.Open(_journal, out _));
            Assert.Contains("DOTNET_SYSTEM_IO_DISABLEFILELOCKING", error.Message, StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFiles(_journal, "*.jsonl"));
        }
        finally
        {
            AppContext.SetSwitch("System.IO.DisableFileLocking", false);
        }
    }

    [Fact]
    public void AJournalThatCannotBeTakenUp_LetsGoOfItsLock_SoTheRealProblemIsWhatTheNextStartReports()
    {
        Directory.CreateDirectory(_journal);
        var change = new ExecutionChange("000000000000000000000001", ExecutionStatus.Running, [], null, null, null);
        File.WriteAllText(Path.Combine(_journal, "0000000001.jsonl"), System.Text.Json.JsonSerializer.Serialize(new AuditJournalEntry { ExecutionChange = change }) + "\n");

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var error = Assert.Throws<InvalidDataException>(() => Open(NewTable(), Never));
            Assert.Contains("an update of execution 000000000000000000000001, which is not written before it", error.Message, StringComparison.Ordinal);
        }

        Assert.Equal(["0000000001.jsonl"], Directory.EnumerateFiles(_journal, "*.jsonl").Select(Path.GetFileName)); // kept for an operator to look at
    }

    [Fact]
    public async Task AnExecutionIdOlderThanTheProcess_IsLookedUpInStorage_BeforeItIsCreated()
    {
        var stored = NewTable();
        var hourAgo = DateTimeOffset.UtcNow.AddHours(-1);
        var earlier = Execution(StormIds.New(hourAgo), hourAgo, "wb-trace-4");
        Assert.True(await stored.TryCreateExecutionAsync(earlier, CancellationToken.None));

        await using var audit = Open(stored, Never);
        Assert.False(await audit.TryCreateExecutionAsync(Execution(earlier.Id, hourAgo, "wb-trace-4"), CancellationToken.None));
        Assert.True(await audit.TryCreateExecutionAsync(Execution(StormIds.New(hourAgo), hourAgo, "wb-trace-4"), CancellationToken.None));

        // A record this process did not write is updated in storage, under its ETag.
        var read = (await audit.GetExecutionAsync(earlier.Id, CancellationToken.None))!;
        read.Transition(ExecutionStatus.Running, DateTimeOffset.UtcNow);
        Assert.True(await audit.TryUpdateExecutionAsync(read, CancellationToken.None));
        Assert.Equal(ExecutionStatus.Running, (await stored.GetExecutionAsync(earlier.Id, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task AFinishedExecutionLeavesMemoryOnceStored_AndIsStillFoundThere()
    {
        var stored = NewTable();
        await using var audit = Open(stored, new WriteBehindOptions { RetainFinished = TimeSpan.Zero });
        var id = await RunOneAsync(audit, "wb-trace-5");
        var heldVersion = (await audit.GetExecutionAsync(id, CancellationToken.None))!;
        await audit.FlushAsync(CancellationToken.None);

        // Out of memory now: reads come from storage, a create of the same id is refused, and a version handed out
        // from memory is refused as stale rather than overwriting the stored record.
        var read = (await audit.GetExecutionAsync(id, CancellationToken.None))!;
        Assert.DoesNotContain("wb:", read.Version, StringComparison.Ordinal);
        Assert.False(await audit.TryCreateExecutionAsync(Execution(id, read.StartTimestamp, "wb-trace-5"), CancellationToken.None));
        heldVersion.Transition(ExecutionStatus.Failed, DateTimeOffset.UtcNow);
        Assert.False(await audit.TryUpdateExecutionAsync(heldVersion, CancellationToken.None));
        Assert.Equal(ExecutionStatus.Succeeded, (await stored.GetExecutionAsync(id, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task WithoutTheJournal_NothingTouchesTheDisk_AndWritesAreStillStored()
    {
        var stored = NewTable();
        await using (var audit = Open(stored, new WriteBehindOptions { Journal = false, FlushDelay = TimeSpan.FromHours(1) }))
        {
            var id = await RunOneAsync(audit, "wb-trace-6");
            Assert.False(Directory.Exists(_journal));
            Assert.Null(await stored.GetExecutionAsync(id, CancellationToken.None));
        }

        // Disposing stored what was pending.
        var trace = await stored.GetTraceAsync("wb-trace-6", CancellationToken.None);
        await AssertStoredWholeAsync(stored, "wb-trace-6", Assert.Single(trace.Executions).Id);
    }

    [Fact]
    public async Task AnUpdate_IsJournaledAsItsChange_WhileItsSegmentHasTheExecutionWhole_AndIsTakenUpAsTheWholeRecord()
    {
        var stored = NewTable();
        var now = DateTimeOffset.UtcNow;
        var dying = Open(stored, Never);
        var record = Execution(StormIds.New(now), now, "wb-trace-8");
        record.Parameters["message"] = new string('p', 2000);
        Assert.True(await dying.TryCreateExecutionAsync(record, CancellationToken.None));
        record.Transition(ExecutionStatus.Scheduled, now.AddMilliseconds(1));
        Assert.True(await dying.TryUpdateExecutionAsync(record, CancellationToken.None));
        string[] Lines() => [.. JournalLines().Where(line => line.Contains(record.Id, StringComparison.Ordinal))];
        Assert.Equal(2, Lines().Length);
        Assert.StartsWith("""{"ExecutionChange":""", Lines()[1], StringComparison.Ordinal);
        Assert.DoesNotContain("ppppp", Lines()[1], StringComparison.Ordinal); // the parameters are not written again

        // More than an update's fields changed: written whole, and later changes build on that.
        var moved = Execution(record.Id, now, "wb-trace-8-moved");
        moved.Parameters["message"] = "short";
        moved.History.Add(record.History[1]);
        moved.Status = ExecutionStatus.Scheduled;
        moved.Version = record.Version;
        Assert.True(await dying.TryUpdateExecutionAsync(moved, CancellationToken.None));
        moved.Transition(ExecutionStatus.Running, now.AddMilliseconds(2));
        Assert.True(await dying.TryUpdateExecutionAsync(moved, CancellationToken.None));
        Assert.Equal(["ExecutionChange", "Execution", "ExecutionChange"], Lines()[1..].Select(line => line[2..line.IndexOf('"', 2)]));

        // Once that segment is stored a new one starts, and the next update is written whole in it.
        await dying.FlushAsync(CancellationToken.None);
        moved.Transition(ExecutionStatus.Succeeded, now.AddMilliseconds(3));
        moved.Result = new JsonObject { ["ok"] = true };
        Assert.True(await dying.TryUpdateExecutionAsync(moved, CancellationToken.None));
        Assert.StartsWith("""{"Execution":""", Assert.Single(Lines()), StringComparison.Ordinal);
        moved.Error = "noted later";
        Assert.True(await dying.TryUpdateExecutionAsync(moved, CancellationToken.None));
        Assert.StartsWith("""{"ExecutionChange":""", Lines()[1], StringComparison.Ordinal);

        // The process dies; the next one takes the change up onto the whole record before it.
        await dying.StopAsIfKilledAsync();
        await using var next = Open(stored, Never);
        await next.FlushAsync(CancellationToken.None);
        var taken = await stored.GetExecutionAsync(record.Id, CancellationToken.None);
        Assert.NotNull(taken);
        Assert.Equal("wb-trace-8-moved", taken.TraceTag);
        Assert.Equal("short", taken.Parameters["message"]!.GetValue<string>());
        Assert.Equal([ExecutionStatus.Requested, ExecutionStatus.Scheduled, ExecutionStatus.Running, ExecutionStatus.Succeeded], taken.History.Select(h => h.Status));
        Assert.Equal(ExecutionStatus.Succeeded, taken.Status);
        Assert.True(taken.Result!["ok"]!.GetValue<bool>());
        Assert.Equal("noted later", taken.Error);
        Assert.Equal(now.AddMilliseconds(3), taken.EndTimestamp);
    }

    [Fact]
    public void TheJournal_SkipsALastLineCutShort_AndNamesTheFileAndLineOfOneCorruptBeforeIt()
    {
        Directory.CreateDirectory(_journal);
        var good = """{"RuleEnforcement":{"TriggerInstanceId":"ti","RuleRef":"p.r","ExecutionId":null,"Status":"failed","FailureReason":"x","EnforcedAt":"2026-11-24T09:00:00+00:00","TraceTag":"t"}}""";
        File.WriteAllText(Path.Combine(_journal, "0000000001.jsonl"), good + "\n" + good[..40]);
        using (var journal = AuditJournal.Open(_journal, out var left))
        {
            Assert.Equal("p.r", Assert.Single(left).RuleEnforcement!.RuleRef);
            Assert.Equal(2, journal.CurrentSegment);
        }

        File.WriteAllText(Path.Combine(_journal, "0000000001.jsonl"), good[..40] + "\n" + good + "\n");
        var error = Assert.Throws<InvalidDataException>(() => AuditJournal.Open(_journal, out _));
        Assert.Contains("0000000001.jsonl, line 1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheJournal_ReadsASegmentAKilledProcessLeft_UpToItsZeros()
    {
        Directory.CreateDirectory(_journal);
        var good = """{"RuleEnforcement":{"TriggerInstanceId":"ti","RuleRef":"p.r","ExecutionId":null,"Status":"failed","FailureReason":"x","EnforcedAt":"2026-11-24T09:00:00+00:00","TraceTag":"t"}}""";
        // A kill mid-copy can leave the end of a line written and its middle still zero.
        var bytes = System.Text.Encoding.UTF8.GetBytes(good + "\n" + good + "\n" + good + "\n");
        Array.Clear(bytes, 2 * (good.Length + 1) + 30, 20);
        File.WriteAllBytes(Path.Combine(_journal, "0000000001.jsonl"), [.. bytes, .. new byte[4096]]);

        using var journal = AuditJournal.Open(_journal, out var left);

        Assert.Equal(2, left.Count);
    }

    [Fact]
    public void TheJournal_MovesToANewSegmentWhenOneIsFull_TakesAWriteLargerThanASegment_SwapsInASpare_AndCutsSegmentsToTheirContent()
    {
        RuleEnforcementRecord Enforcement(int i, int reasonLength) =>
            new("ti-" + i, "p.r", null, RuleEnforcementRecord.Failed, new string('x', reasonLength), DateTimeOffset.UnixEpoch, "t");
        using (var journal = AuditJournal.Open(_journal, out _, segmentBytes: 1024))
        {
            for (var i = 0; i < 20; i++)
            {
                journal.Append(new AuditJournalEntry { RuleEnforcement = Enforcement(i, i == 10 ? 5000 : 10) });
            }

            Assert.True(journal.CurrentSegment > 3);

            // Off the path: the full segments are closed and a spare made ready, which the next segment then is.
            journal.Tidy();
            var spare = journal.CurrentSegment + 1;
            Assert.Equal(spare - 1, journal.Rotate());
            Assert.Equal(spare, journal.CurrentSegment);
            journal.Append(new AuditJournalEntry { RuleEnforcement = Enforcement(20, 10) });

            // A spare too small for a write is passed over (and goes), and what follows stays in order.
            journal.Tidy();
            journal.Append(new AuditJournalEntry { RuleEnforcement = Enforcement(21, 5000) });
            journal.Append(new AuditJournalEntry { RuleEnforcement = Enforcement(22, 10) });
            journal.Tidy();
            journal.Rotate();
            journal.Append(new AuditJournalEntry { RuleEnforcement = Enforcement(23, 10) });
        }

        var segments = Directory.GetFiles(_journal, "*.jsonl");
        Assert.All(segments, path => Assert.DoesNotContain((byte)0, File.ReadAllBytes(path)));
        using (AuditJournal.Open(_journal, out var left))
        {
            Assert.Equal(Enumerable.Range(0, 24).Select(i => "ti-" + i), left.Select(e => e.RuleEnforcement!.TriggerInstanceId));
            Assert.Equal(5000, left[10].RuleEnforcement!.FailureReason!.Length);
            Assert.Equal(5000, left[21].RuleEnforcement!.FailureReason!.Length);
        }
    }
}
