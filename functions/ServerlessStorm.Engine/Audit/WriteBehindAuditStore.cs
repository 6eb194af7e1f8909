using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Engine.Audit;

/// <summary>How the audit written behind the pipeline behaves (configuration section <c>Storage:WriteBehind</c>).</summary>
public sealed class WriteBehindOptions
{
    public const string Section = "Storage:WriteBehind";

    /// <summary>How long writes gather before they are stored together.</summary>
    public TimeSpan FlushDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a finished, stored execution stays in memory (reads of it need no storage round trip).</summary>
    public TimeSpan RetainFinished { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Records not yet stored beyond which new writes wait for the store to catch up (bounds memory). A webhook's way
    /// to its finished action leaves three (trigger instance, enforcement, execution), so the default lets about 33,000
    /// deliveries be accepted while storage is away (40 s at 800 a second), in about 250 MB beyond an idle server
    /// (measured: 32,069 held 247 MB; see docs/benchmarks.md).
    /// </summary>
    public int MaxPending { get; set; } = 100_000;

    /// <summary>
    /// Append every write to the journal before it returns (true), so a killed process loses nothing; false keeps
    /// writes in memory only until they are stored, and a process that dies loses up to <see cref="FlushDelay"/> of them.
    /// </summary>
    public bool Journal { get; set; } = true;

    /// <summary>How long to wait before storing again after the store failed.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a webhook's delivery id is remembered: a redelivery within it is the same trigger instance. Senders
    /// retry for hours to a few days (GitHub lets a person redeliver for 3 days); a week covers them.
    /// </summary>
    public TimeSpan DeliveryIdRetention { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>
/// The audit written behind the pipeline, for one process that owns its audit (<c>storm serve</c> on the in-process
/// bus): a write is appended to the <see cref="AuditJournal"/> and applied to the records in memory, and returns;
/// the stored audit receives it a few milliseconds later, many writes in one go. Executions are read, and claimed
/// under their version, from memory while they are there, so the pipeline never waits for storage. Queries and
/// traces first wait until everything written before them is stored. A process that dies loses nothing it
/// accepted: the next start stores what the journal holds before anything else.
/// </summary>
public sealed class WriteBehindAuditStore : IAuditStore, IAsyncDisposable
{
    private const string VersionPrefix = "wb:";

    private readonly IAuditStore _stored;
    private readonly AuditJournal? _journal;
    private readonly LocalDeliveryIds? _deliveries;
    private readonly WriteBehindOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ExecutionEntry> _executions = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirtyExecutions = new(StringComparer.Ordinal);
    private readonly Queue<(string Id, DateTimeOffset FinishedAt)> _finished = new();
    private readonly Dictionary<string, TriggerInstanceEntry> _triggerInstances = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirtyTriggerInstances = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, string), RuleEnforcementRecord> _enforcements = [];
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _giveUp = new();
    private int _outage;

    /// <summary>How long a stop waits for storage to take what the journal holds.</summary>
    public static readonly TimeSpan StopDeadline = TimeSpan.FromSeconds(5);
    private readonly Task _flusher;
    private TaskCompletionSource _nextPass = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenSource? _gathering;
    private bool _signaled;
    private bool _hurry;
    private bool _passInFlight;
    private bool _killed;
    private long _version;

    // Every execution whose id is this recent or newer is in memory if it exists at all: ids carry their creation
    // second, this process made all ids from its start on, and this moves up as finished executions leave memory.
    // An older id must be looked up in storage before it can be created.
    private DateTimeOffset _completeSince;

    /// <summary>Opens the journal in <paramref name="journalDirectory"/> and takes up what an earlier process left unstored.</summary>
    public WriteBehindAuditStore(IAuditStore stored, string journalDirectory, WriteBehindOptions options, TimeProvider time, ILogger<WriteBehindAuditStore> logger)
    {
        _stored = stored;
        _options = options;
        _time = time;
        _logger = logger;
        IReadOnlyList<AuditJournalEntry> left = [];
        _journal = options.Journal ? AuditJournal.Open(journalDirectory, out left) : null;
        _deliveries = options.Journal ? new LocalDeliveryIds(journalDirectory, options.DeliveryIdRetention) : null;
        var now = time.GetUtcNow();
        _completeSince = DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds() + 1);
        try
        {
            foreach (var written in left)
            {
                var entry = written;
                if (entry.ExecutionChange is { } change)
                {
                    // The execution is written whole earlier in the same segment.
                    entry = _executions.TryGetValue(change.Id, out var before)
                        ? new AuditJournalEntry { Execution = change.ApplyTo(before.Current) }
                        : throw new InvalidDataException($"audit journal {journalDirectory}: an update of execution {change.Id}, which is not written before it");
                }

                if (entry.Execution is { } execution)
                {
                    execution.Version = NextVersion(); // versions are this process's own
                }

                Apply(entry, now);
            }
        }
        catch
        {
            _journal?.Dispose(); // its lock and its new, empty segment go with it
            _deliveries?.Dispose();
            throw;
        }

        if (left.Count > 0)
        {
            _logger.AuditJournalTakenUp(left.Count, journalDirectory);
            Signal();
        }

        _flusher = Task.Run(FlushLoopAsync);
    }

    /// <summary>The folder of the journal; null when writes are not journaled.</summary>
    public string? JournalDirectory => _journal?.FullPath;

    /// <summary>Writes accepted but not yet stored.</summary>
    public int Pending
    {
        get
        {
            lock (_gate)
            {
                return PendingUnderGate;
            }
        }
    }

    public async Task RecordTriggerInstanceAsync(TriggerInstanceRecord record, CancellationToken cancellationToken)
    {
        await WaitForRoomAsync(cancellationToken);
        Write(new AuditJournalEntry { TriggerInstance = Copy(record, record.Status, record.Reason) });
    }

    /// <summary>
    /// Answered from this server's own disk (<see cref="LocalDeliveryIds"/>) beside the journal, so accepting a webhook
    /// never waits on storage; without a journal (nothing on disk), from storage.
    /// </summary>
    public Task<DateTimeOffset> FirstAcceptedAsync(string triggerInstanceId, DateTimeOffset now, CancellationToken cancellationToken) =>
        _deliveries?.FirstAcceptedAsync(triggerInstanceId, now, cancellationToken) ?? _stored.FirstAcceptedAsync(triggerInstanceId, now, cancellationToken);

    public async Task UpdateTriggerInstanceStatusAsync(string id, DateTimeOffset occurredAt, string status, string? reason, CancellationToken cancellationToken)
    {
        await WaitForRoomAsync(cancellationToken);
        Write(new AuditJournalEntry { TriggerInstanceStatus = new TriggerInstanceStatusChange(id, occurredAt, status, reason) });
    }

    public async Task RecordRuleEnforcementAsync(RuleEnforcementRecord record, CancellationToken cancellationToken)
    {
        await WaitForRoomAsync(cancellationToken);
        Write(new AuditJournalEntry { RuleEnforcement = record });
    }

    public async Task<bool> TryCreateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        bool complete;
        lock (_gate)
        {
            if (_executions.ContainsKey(record.Id))
            {
                return false;
            }

            complete = StormIds.TryGetTimestamp(record.Id, out var at) && at >= _completeSince;
        }

        if (!complete && await _stored.GetExecutionAsync(record.Id, cancellationToken) is not null)
        {
            return false;
        }

        await WaitForRoomAsync(cancellationToken);
        lock (_gate)
        {
            if (_executions.ContainsKey(record.Id))
            {
                return false;
            }

            record.Version = WriteExecution(record);
            return true;
        }
    }

    public Task<ExecutionRecord?> GetExecutionAsync(string id, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_executions.TryGetValue(id, out var entry))
            {
                return Task.FromResult<ExecutionRecord?>(entry.Current.Clone());
            }
        }

        return _stored.GetExecutionAsync(id, cancellationToken);
    }

    public async Task<bool> TryUpdateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        await WaitForRoomAsync(cancellationToken);
        lock (_gate)
        {
            if (_executions.TryGetValue(record.Id, out var entry))
            {
                if (entry.Current.Version != record.Version)
                {
                    return false;
                }

                record.Version = WriteExecution(record);
                return true;
            }
        }

        // Not in memory: created before this process, or finished and stored a while ago. A version handed out from
        // memory is no ETag, so a caller still holding one is told the record changed and reads it again.
        return record.Version?.StartsWith(VersionPrefix, StringComparison.Ordinal) == true
            ? false
            : await _stored.TryUpdateExecutionAsync(record, cancellationToken);
    }

    public async Task<IReadOnlyList<ExecutionRecord>> QueryExecutionsAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        return await _stored.QueryExecutionsAsync(query, cancellationToken);
    }

    public async Task<IReadOnlyList<TriggerInstanceRecord>> QueryTriggerInstancesAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        return await _stored.QueryTriggerInstancesAsync(query, cancellationToken);
    }

    public async Task<AuditTrace> GetTraceAsync(string traceTag, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        return await _stored.GetTraceAsync(traceTag, cancellationToken);
    }

    public async Task<IReadOnlyList<DateOnly>> DaysBeforeAsync(DateOnly before, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        return await _stored.DaysBeforeAsync(before, cancellationToken);
    }

    /// <summary>
    /// Purges the stored day once what was written before is stored; an execution held here is the stored one's latest
    /// state, so one the store still shows running is kept however far its writes lag. The delivery ids on this disk
    /// expire on their own (<see cref="WriteBehindOptions.DeliveryIdRetention"/>).
    /// </summary>
    public async Task<AuditDayPurge> PurgeDayAsync(DateOnly day, CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken);
        var purged = await _stored.PurgeDayAsync(day, cancellationToken);
        lock (_gate)
        {
            // What memory still holds of the day is a stored, finished copy: it leaves with the stored one.
            foreach (var (id, entry) in _executions.Where(e => AuditRetention.DayOfExecution(e.Key) == day && !purged.KeptExecutions.Contains(e.Key)).ToList())
            {
                if (ExecutionStatus.IsTerminal(entry.Current.Status) && entry.Stored && !_dirtyExecutions.Contains(id))
                {
                    Forget(id);
                }
            }
        }

        return purged;
    }

    /// <summary>Completes once everything written before the call is stored (or storing it failed and will be retried).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        Task pass;
        lock (_gate)
        {
            if (PendingUnderGate == 0 && !_passInFlight)
            {
                return;
            }

            pass = _nextPass.Task;
        }

        Hurry();
        await pass.WaitAsync(cancellationToken);
    }

    // Starts the next pass now, without waiting out the gathering delay.
    private void Hurry()
    {
        CancellationTokenSource? gathering;
        lock (_gate)
        {
            _hurry = true;
            gathering = _gathering;
            Signal();
        }

        try
        {
            gathering?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // That pass already started.
        }
    }

    /// <summary>Stores everything still pending, then closes the journal (its segments are deleted when all is stored).</summary>
    public async ValueTask DisposeAsync()
    {
        // Storage that does not answer in time does not hold the stop: what is left stays in the journal.
        _giveUp.CancelAfter(StopDeadline);
        await _stopping.CancelAsync();
        Hurry();

        await _flusher;
        _giveUp.Dispose();
        _journal?.Dispose();
        _deliveries?.Dispose();
        _wake.Dispose();
        _stopping.Dispose();
    }

    /// <summary>
    /// Stops as a killed process stops: nothing more is stored, and the journal is left as it is, with its lock
    /// released. For tests that simulate a process dying; the store is unusable afterwards.
    /// </summary>
    internal async Task StopAsIfKilledAsync()
    {
        lock (_gate)
        {
            _killed = true;
        }

        Hurry();
        await _flusher;
        lock (_gate)
        {
            _journal?.AbandonAsIfKilled();
        }

        _deliveries?.Dispose();
    }

    private int PendingUnderGate => _dirtyExecutions.Count + _dirtyTriggerInstances.Count + _enforcements.Count;

    private void Write(AuditJournalEntry entry)
    {
        lock (_gate)
        {
            _journal?.Append(entry);
            Apply(entry, _time.GetUtcNow());
            Signal();
        }
    }

    // Under _gate: the execution as written becomes the one in memory, under a new version, which is returned.
    private string WriteExecution(ExecutionRecord record)
    {
        var copy = record.Clone();
        copy.Version = NextVersion();
        var journaledIn = Journal(copy);
        Apply(new AuditJournalEntry { Execution = copy }, _time.GetUtcNow());
        _executions[copy.Id].JournaledIn = journaledIn;
        Signal();
        return copy.Version;
    }

    // Under _gate: appends the execution to the journal, as only its change when it is written whole earlier in the
    // segment being written; returns the segment that has it whole.
    private long Journal(ExecutionRecord record)
    {
        if (_journal is null)
        {
            return 0;
        }

        if (_executions.TryGetValue(record.Id, out var before) && before.JournaledIn == _journal.CurrentSegment
            && ExecutionChange.Between(before.Current, record) is { } change
            && _journal.TryAppendTo(before.JournaledIn, new AuditJournalEntry { ExecutionChange = change }))
        {
            return before.JournaledIn;
        }

        _journal.Append(new AuditJournalEntry { Execution = record });
        return _journal.CurrentSegment;
    }

    // Under _gate (or while constructing): applies one write to the records in memory and marks it to be stored.
    private void Apply(AuditJournalEntry entry, DateTimeOffset now)
    {
        if (entry.Execution is { } execution)
        {
            if (_executions.TryGetValue(execution.Id, out var existing))
            {
                existing.Current = execution;
            }
            else
            {
                _executions[execution.Id] = new ExecutionEntry(execution);
            }

            _dirtyExecutions.Add(execution.Id);
            if (ExecutionStatus.IsTerminal(execution.Status))
            {
                _finished.Enqueue((execution.Id, now));
            }
        }
        else if (entry.TriggerInstance is { } instance)
        {
            _triggerInstances[instance.Id] = new TriggerInstanceEntry { Record = instance };
            _dirtyTriggerInstances.Add(instance.Id);
        }
        else if (entry.TriggerInstanceStatus is { } change)
        {
            if (_triggerInstances.TryGetValue(change.Id, out var pending) && pending.Record is { } recorded)
            {
                pending.Record = Copy(recorded, change.Status, change.Reason);
            }
            else
            {
                _triggerInstances[change.Id] = new TriggerInstanceEntry { StatusChange = change };
            }

            _dirtyTriggerInstances.Add(change.Id);
        }
        else if (entry.RuleEnforcement is { } enforcement)
        {
            _enforcements[(enforcement.TriggerInstanceId, enforcement.RuleRef)] = enforcement;
        }
    }

    // Under _gate: wakes the flusher once for any number of writes.
    private void Signal()
    {
        if (!_signaled)
        {
            _signaled = true;
            _wake.Release();
        }
    }

    private async Task WaitForRoomAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task pass;
            lock (_gate)
            {
                if (PendingUnderGate < _options.MaxPending)
                {
                    return;
                }

                pass = _nextPass.Task;
            }

            Hurry(); // full: store now rather than after the gathering delay
            await pass.WaitAsync(cancellationToken);
        }
    }

    private async Task FlushLoopAsync()
    {
        var failures = 0;
        while (true)
        {
            await _wake.WaitAsync();
            bool stopping, killed;
            CancellationTokenSource? gathering = null;
            lock (_gate)
            {
                // Read with _signaled cleared, under the gate: a stop or kill that comes after this signals again.
                _signaled = false;
                killed = _killed;
                stopping = _stopping.IsCancellationRequested;
                if (!killed && !stopping && !_hurry)
                {
                    _gathering = gathering = new CancellationTokenSource();
                }

                _hurry = false;
            }

            if (gathering is not null)
            {
                try
                {
                    await Task.Delay(_options.FlushDelay, _time, gathering.Token);
                }
                catch (OperationCanceledException)
                {
                    // A reader is waiting for the store: go now.
                }

                lock (_gate)
                {
                    _gathering = null;
                    killed = _killed;
                }

                gathering.Dispose();
            }

            if (killed)
            {
                return;
            }

            var stored = await PassAsync();
            failures = stored ? 0 : failures + 1;
            int pending;
            lock (_gate)
            {
                pending = PendingUnderGate;
            }

            if (stopping && (pending == 0 || failures >= 3))
            {
                if (pending > 0)
                {
                    _logger.AuditWritesLeftInJournal(pending);
                }

                return;
            }

            if (!stored)
            {
                await Task.Delay(stopping ? TimeSpan.FromMilliseconds(200) : _options.RetryDelay, _time);
            }

            if (pending > 0 || stopping)
            {
                lock (_gate)
                {
                    Signal();
                }
            }
        }
    }

    // One pass: takes everything written so far, stores it (each record once, in its latest state, concurrently, so
    // the store can batch), and deletes the journal segments it covered when all of it is stored.
    private async Task<bool> PassAsync()
    {
        TaskCompletionSource pass;
        long lastSegment;
        List<(ExecutionRecord Record, bool Stored)> executions;
        List<(string Id, TriggerInstanceEntry Entry)> triggerInstances;
        List<RuleEnforcementRecord> enforcements;
        lock (_gate)
        {
            pass = _nextPass;
            _nextPass = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _passInFlight = true;
            lastSegment = _journal?.Rotate() ?? 0;
            executions = [.. _dirtyExecutions.Select(id => _executions[id].Snapshot())];
            _dirtyExecutions.Clear();
            triggerInstances = [.. _dirtyTriggerInstances.Select(id => (id, _triggerInstances[id].Snapshot()))];
            _dirtyTriggerInstances.Clear();
            enforcements = [.. _enforcements.Values];
            _enforcements.Clear();
        }

        try
        {
            _journal?.Tidy();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // What the segments hold is in their files, synced or not; without a spare the next one is made on the path.
            _logger.AuditJournalSegmentUpkeepFailed(ex);
        }

        var failed = 0;

        // Stores one record; then, under the gate, what follows its success or its failure (kept to be tried again).
        async Task StoreOneAsync(string kind, string id, Func<Task> store, Action stored, Action keep)
        {
            try
            {
                await store();
                lock (_gate)
                {
                    stored();
                }
            }
            catch (Exception ex)
            {
                Interlocked.Increment(ref failed);
                // Once per outage, with its cause: a stack trace per record would bury everything else.
                if (Interlocked.Exchange(ref _outage, 1) == 0)
                {
                    _logger.AuditStorageUnavailable(kind, id, Diagnostics.ExceptionCause.Of(ex));
                }

                lock (_gate)
                {
                    keep();
                }
            }
        }

        await Task.WhenAll([
            .. executions.Select(e => StoreOneAsync("execution", e.Record.Id, () => StoreAsync(e.Record, e.Stored),
                () =>
                {
                    if (_executions.TryGetValue(e.Record.Id, out var entry))
                    {
                        entry.Stored = true;
                    }
                },
                () => _dirtyExecutions.Add(e.Record.Id))),
            .. triggerInstances.Select(t => StoreOneAsync("trigger instance", t.Id, () => StoreAsync(t.Entry),
                () =>
                {
                    if (!_dirtyTriggerInstances.Contains(t.Id))
                    {
                        _triggerInstances.Remove(t.Id);
                    }
                },
                () => _dirtyTriggerInstances.Add(t.Id))),
            .. enforcements.Select(e => StoreOneAsync("rule enforcement", $"{e.TriggerInstanceId}/{e.RuleRef}", () => _stored.RecordRuleEnforcementAsync(e, _giveUp.Token),
                () => { },
                () => _enforcements.TryAdd((e.TriggerInstanceId, e.RuleRef), e))), // a newer one wins
        ]);

        if (failed == 0)
        {
            if (Interlocked.Exchange(ref _outage, 0) == 1)
            {
                _logger.AuditStorageAvailableAgain();
            }

            try
            {
                _journal?.DeleteThrough(lastSegment);
            }
            catch (IOException ex)
            {
                // Left segments are stored again at the next start, which is harmless: every write is idempotent.
                _logger.AuditStoreFailed(ex, "journal segment", lastSegment.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        lock (_gate)
        {
            ForgetFinished();
            _passInFlight = false;
        }

        pass.SetResult();
        return failed == 0;
    }

    private async Task StoreAsync(ExecutionRecord record, bool stored)
    {
        record.Version = null;
        if (!stored && await _stored.TryCreateExecutionAsync(record, _giveUp.Token))
        {
            return;
        }

        // Stored before (or by an earlier process that died before its journal segment was deleted): this process
        // owns the record, so its latest state replaces what is stored.
        record.Version = null;
        if (!await _stored.TryUpdateExecutionAsync(record, _giveUp.Token))
        {
            throw new InvalidOperationException($"execution {record.Id} could be neither created nor replaced");
        }
    }

    private Task StoreAsync(TriggerInstanceEntry entry) => entry.Record is { } record
        ? _stored.RecordTriggerInstanceAsync(record, _giveUp.Token)
        : _stored.UpdateTriggerInstanceStatusAsync(entry.StatusChange!.Id, entry.StatusChange.OccurredAt, entry.StatusChange.Status, entry.StatusChange.Reason, _giveUp.Token);

    // Under _gate: finished executions that are stored and have been left alone for a while leave memory.
    private void ForgetFinished()
    {
        var before = _time.GetUtcNow() - _options.RetainFinished;
        while (_finished.TryPeek(out var next) && next.FinishedAt <= before)
        {
            _finished.Dequeue();
            if (!_executions.TryGetValue(next.Id, out var entry) || !ExecutionStatus.IsTerminal(entry.Current.Status))
            {
                continue;
            }

            if (!entry.Stored || _dirtyExecutions.Contains(next.Id))
            {
                _finished.Enqueue((next.Id, _time.GetUtcNow())); // not stored yet: look again later
                continue;
            }

            Forget(next.Id);
        }
    }

    // Under _gate. Memory stays the whole story for ids from _completeSince on, so it moves past one it lets go.
    private void Forget(string id)
    {
        _executions.Remove(id);
        if (StormIds.TryGetTimestamp(id, out var at) && at >= _completeSince)
        {
            _completeSince = at.AddSeconds(1);
        }
    }

    private string NextVersion() => VersionPrefix + (++_version).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static TriggerInstanceRecord Copy(TriggerInstanceRecord record, string status, string? reason) => new()
    {
        Id = record.Id,
        TriggerType = record.TriggerType,
        TriggerParameters = record.TriggerParameters,
        Payload = record.Payload,
        OccurredAt = record.OccurredAt,
        TraceTag = record.TraceTag,
        Status = status,
        Reason = reason,
        User = record.User,
    };

    private sealed class ExecutionEntry(ExecutionRecord current)
    {
        /// <summary>The latest state; never changed in place (a write replaces it), so a pass may copy it later.</summary>
        public ExecutionRecord Current { get; set; } = current;

        /// <summary>The store holds the record (in some state), so later states replace it.</summary>
        public bool Stored { get; set; }

        /// <summary>The journal segment that has this execution whole (0: none this process writes).</summary>
        public long JournaledIn { get; set; }

        public (ExecutionRecord Record, bool Stored) Snapshot() => (Current.Clone(), Stored);
    }

    private sealed class TriggerInstanceEntry
    {
        /// <summary>The whole record, while it is not yet stored.</summary>
        public TriggerInstanceRecord? Record { get; set; }

        /// <summary>Only a status to set, for a record stored earlier.</summary>
        public TriggerInstanceStatusChange? StatusChange { get; set; }

        public TriggerInstanceEntry Snapshot() => new() { Record = Record is null ? null : Copy(Record, Record.Status, Record.Reason), StatusChange = StatusChange };
    }
}
