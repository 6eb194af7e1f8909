using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Sensors;

/// <summary>Sensor settings (configuration section <c>Storm:Sensors</c>).</summary>
public sealed class SensorOptions
{
    public const string Section = "Storm:Sensors";

    /// <summary>The longest a poll may take: it is canceled then and recorded as failed. Also how long a poll holds its sensor.</summary>
    public TimeSpan PollTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Whether this host supervises long-running sensors (<c>storm serve</c> does; the Function app cannot).</summary>
    public bool RunLongRunning { get; set; }

    /// <summary>How long a long-running sensor's hold lasts; it is renewed at a third of it while the sensor runs.</summary>
    public TimeSpan LongRunningLease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest wait before a long-running sensor that ended or failed is started again (doubling from a second).</summary>
    public TimeSpan MaxRestartBackoff { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The most a sensor's kept state may weigh, serialized.</summary>
    public int MaxStateBytes { get; set; } = 30_000;

    /// <summary>
    /// Whether polls are scheduled as ticks, delayed messages on the timers queue (the Function app: nothing runs
    /// between polls, and an app without sensors is never woken), rather than by a host's loop (storm serve).
    /// </summary>
    public bool Ticks { get; set; }
}

/// <summary>
/// Runs the packs' sensors, one engine for every host: <see cref="RunDueAsync"/> polls each enabled polling sensor
/// whose <c>poll_interval</c> has passed since its last poll ended (a host calls it every few seconds: <c>storm
/// serve</c>'s loop, the Function app's timer function), so no process stays up per sensor. Between polls the
/// sensor's state and status are in the <see cref="ISensorStore"/>, so a restarted host goes on where it stopped.
/// A poll holds its sensor in the store until it ends (at most <see cref="SensorOptions.PollTimeout"/>), so one host
/// instance polls a sensor at a time and a poll that overruns its interval is not started again.
/// </summary>
public sealed class SensorScheduler
{
    public const string LongRunningInFunctions =
        "a long-running sensor (run() forever) runs only in storm serve: a Function app runs code per event, each invocation within a time limit, so nothing can run forever there; rewrite it as a PollingSensor";

    private readonly PackCatalog _catalog;
    private readonly IReadOnlyList<ISensorRunner> _runners;
    private readonly ISensorStore _store;
    private readonly TriggerDispatcher _dispatcher;
    private readonly KeyValueService _keys;
    private readonly SensorOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<SensorScheduler> _logger;
    private readonly ConcurrentDictionary<string, Task> _inFlight = new(StringComparer.Ordinal);
    private readonly PackConfigService? _configs;
    private readonly Messaging.IMessageBus? _bus;

    public SensorScheduler(PackCatalog catalog, IEnumerable<ISensorRunner> runners, ISensorStore store, TriggerDispatcher dispatcher, KeyValueService keys,
        IOptions<SensorOptions> options, TimeProvider time, ILogger<SensorScheduler> logger, PackConfigService? configs = null, Messaging.IMessageBus? bus = null)
    {
        (_catalog, _runners, _store, _dispatcher, _keys, _options, _time, _logger) = (catalog, [.. runners], store, dispatcher, keys, options.Value, time, logger);
        _configs = configs;
        _bus = bus;
    }

    private bool Ticks => _options.Ticks && _bus is not null;

    /// <summary>Who this scheduler is when it holds a sensor.</summary>
    public string InstanceId { get; } = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid():N}";

    /// <summary>
    /// The sensors a runner of this host runs, enabled or not: whether one is enabled is its record's to say (an
    /// operator's <c>storm sensor enable|disable</c>), else its YAML's, and is checked each time it is due.
    /// </summary>
    public IEnumerable<(SensorDefinition Sensor, ISensorRunner Runner)> Runnable =>
        _catalog.Sensors.Select(s => (Sensor: s, Runner: RunnerFor(s)!)).Where(s => s.Runner is not null);

    public static bool IsEnabled(SensorDefinition sensor, SensorRecord? record) => record?.Enabled ?? sensor.Enabled;

    public bool HasSensors => Runnable.Any();

    /// <summary>The longest error text kept or logged for a sensor: Table Storage caps a string property at 64 KiB.</summary>
    public const int MaxErrorLength = 4_000;

    /// <summary>
    /// The one way a sensor's error is kept or logged: its secrets masked (before cutting, so no secret is cut in two
    /// and left half visible), then cut to <see cref="MaxErrorLength"/> with a marker.
    /// </summary>
    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(error))]
    public static string? ErrorText(string? error, SensorHost? host)
    {
        var masked = host is null ? error : host.Mask(error);
        return masked is null || masked.Length <= MaxErrorLength ? masked
            : string.Concat(masked.AsSpan(0, MaxErrorLength), $"... [{masked.Length - MaxErrorLength} more characters cut]");
    }

    public ISensorRunner? RunnerFor(SensorDefinition sensor) => _runners.FirstOrDefault(r => r.Runs(sensor));

    /// <summary>Polls every sensor that is due and free, and waits for those polls.</summary>
    public Task RunDueAsync(CancellationToken cancellationToken) => Task.WhenAll(StartDue(cancellationToken));

    /// <summary>Starts a poll of every sensor that is due and not already being polled by this scheduler; the polls started.</summary>
    public IReadOnlyList<Task> StartDue(CancellationToken cancellationToken)
    {
        var started = new List<Task>();
        foreach (var (sensor, runner) in Runnable)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_inFlight.TryAdd(sensor.Ref, done.Task))
            {
                continue; // still polling from an earlier round
            }

            started.Add(Task.Run(async () =>
            {
                try
                {
                    await PollIfDueAsync(sensor, runner, cancellationToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    _logger.SensorRoundFailed(ex);
                }
                finally
                {
                    _inFlight.TryRemove(sensor.Ref, out _);
                    done.TrySetResult();
                }
            }, CancellationToken.None));
        }

        return started;
    }

    /// <summary>Every sensor with its status: disabled, without a runner, or as stored.</summary>
    public async Task<IReadOnlyList<(SensorDefinition Sensor, string? Runner, SensorRecord Record)>> StatusesAsync(CancellationToken cancellationToken)
    {
        var stored = (await _store.ListAsync(cancellationToken)).ToDictionary(r => r.Ref, StringComparer.Ordinal);
        return [.. _catalog.Sensors.Select(sensor =>
        {
            var runner = RunnerFor(sensor);
            var record = stored.GetValueOrDefault(sensor.Ref) ?? new SensorRecord(sensor.Ref);
            record = !IsEnabled(sensor, record) ? record with { Status = SensorStates.Disabled }
                : runner is null ? record with { Status = SensorStates.NoRunner, LastError = record.LastError ?? $"no sensor runner of this host runs '{sensor.EntryPoint}'" }
                : record;
            return (sensor, runner is null ? null : RunnerName(runner), record);
        })];
    }

    public static string RunnerName(ISensorRunner runner) => runner.GetType().Name switch
    {
        var name when name.EndsWith("SensorRunner", StringComparison.Ordinal) => name[..^"SensorRunner".Length].ToLowerInvariant(),
        var name => name,
    };

    /// <summary>The triggers rules watch on the sensor's trigger types, one per distinct type and parameters (StackStorm's add_trigger).</summary>
    public IReadOnlyList<SensorTrigger> TriggersFor(SensorDefinition sensor) =>
        [.. _catalog.Rules.Where(r => r.Enabled && sensor.TriggerTypes.Contains(r.TriggerType))
            .Select(r => (r.TriggerType, Parameters: r.TriggerParameters))
            .DistinctBy(t => t.TriggerType + "\n" + t.Parameters.ToJsonString())
            .Select(t => new SensorTrigger(TriggerRef(t.TriggerType, t.Parameters), t.TriggerType, (JsonObject)t.Parameters.DeepClone()))];

    private static string TriggerRef(string type, JsonObject parameters) => parameters.Count == 0 ? type
        : $"{type}:{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(parameters.ToJsonString())).AsSpan(0, 6))}";

    // The pack's config as each run sees it, rendered then (its st2kv values change), and what to mask in what the
    // sensor says: the config's secrets and the datastore's.
    private async Task<(SensorRun Run, SensorHost Host)> RunOfAsync(SensorDefinition sensor, JsonObject state, CancellationToken cancellationToken)
    {
        var pack = _catalog.Packs[sensor.Pack];
        var secrets = new List<string>(await _keys.AllSecretValuesAsync(cancellationToken));
        if (_configs is not null)
        {
            var resolved = await _configs.ResolveAsync(sensor.Pack, StormIds.New(_time.GetUtcNow()), SensorHost.SourceOf(sensor), cancellationToken);
            pack = pack with { Config = resolved.Values };
            secrets.AddRange(resolved.Secrets);
        }

        var run = new SensorRun(sensor, pack, TriggersFor(sensor), state);
        return (run, new SensorHost(run, _catalog, _dispatcher, _keys, _time, _logger, Audit.SecretMasker.Expand(secrets)));
    }

    // Whether it polled: false when it was not due, held elsewhere, long-running, or another instance claimed it first.
    // A tick's poll (tick) is due at the tick's time, whatever this instance's clock says, and schedules its next tick.
    private async Task<bool> PollIfDueAsync(SensorDefinition sensor, ISensorRunner runner, CancellationToken cancellationToken, SensorTick? tick = null)
    {
        var now = _time.GetUtcNow();
        var record = await _store.GetAsync(sensor.Ref, cancellationToken) ?? new SensorRecord(sensor.Ref);
        if (!IsEnabled(sensor, record))
        {
            return false;
        }

        if (record.LongRunning && record.LongRunningCode != CodeOf(sensor))
        {
            // Its code changed since it was found long-running (rewritten as a PollingSensor, say): a poll finds out
            // again what it is, once no other instance holds it. In the instance that runs it, the claim below also
            // ends the run of the old code (its renewal finds the record changed).
            record = record with { LongRunning = false, LongRunningCode = null, Status = SensorStates.Pending, LastError = null, NextPoll = null };
        }

        if (record.LongRunning)
        {
            // Said once, and not while a host that runs it holds it: a write would break that host's hold each round.
            if (!_options.RunLongRunning && record.Status != SensorStates.NotRun && !record.HeldBySomeoneElse(InstanceId, now))
            {
                await _store.TryWriteAsync(record with { Status = SensorStates.NotRun, LastError = LongRunningInFunctions }, cancellationToken);
                _logger.SensorNotRunHere(sensor.Ref, LongRunningInFunctions);
            }

            return false; // a host that runs long-running sensors supervises it (SuperviseLongRunningAsync)
        }

        var asOf = tick is not null && tick.At > now ? tick.At : now;
        // Held by this instance too: a poll of this scheduler under way (a second copy of its tick) is not doubled.
        if (record.NextPoll > asOf || record.IsHeld(now))
        {
            return false;
        }

        // The hold outlasts the poll's timeout, so nobody else starts it while it may still run.
        var claimed = await _store.TryWriteAsync(record with { Holder = InstanceId, LeaseUntil = now + _options.PollTimeout + TimeSpan.FromSeconds(30) }, cancellationToken);
        if (claimed is null)
        {
            return false; // another instance claimed it first
        }

        // A poll that does not get to its own write (the host stopping cancels it) gives its hold back, or a
        // restarted host (a new InstanceId) would wait out the whole lease before polling the sensor again.
        var written = false;
        try
        {
            await PollClaimedAsync(sensor, runner, claimed, cancellationToken, ticks: Ticks || tick is not null);
            written = true;
        }
        finally
        {
            if (!written)
            {
                await ReleaseAsync(sensor.Ref, claimed);
            }
        }

        return true;
    }

    private string CodeOf(SensorDefinition sensor) => SensorFiles.Fingerprint(_catalog.Packs[sensor.Pack].Directory, sensor.EntryPoint ?? "");

    private static TimeSpan Clamp(TimeSpan interval) =>
        interval < SensorDefinition.MinimumPollInterval ? SensorDefinition.MinimumPollInterval
        : interval > SensorDefinition.MaximumPollInterval ? SensorDefinition.MaximumPollInterval
        : interval;

    // Gives a hold back as it was claimed (state and status unchanged), briefly: the host may be stopping.
    private async Task ReleaseAsync(string sensorRef, SensorRecord claimed)
    {
        using var brief = new CancellationTokenSource(TimeSpan.FromSeconds(5), _time);
        try
        {
            if (await _store.TryWriteAsync(claimed with { Holder = null, LeaseUntil = null }, brief.Token) is null)
            {
                _logger.SensorLeaseLost(sensorRef);
            }
        }
        catch (Exception ex)
        {
            // The hold then lapses at its lease; the exception that ended the poll is the one to surface.
            _logger.SensorRoundFailed(ex);
        }
    }

    private async Task PollClaimedAsync(SensorDefinition sensor, ISensorRunner runner, SensorRecord claimed, CancellationToken cancellationToken, bool ticks)
    {
        var watch = Stopwatch.StartNew();
        SensorPollOutcome outcome;
        SensorHost? host = null;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(_options.PollTimeout);
            try
            {
                (var run, host) = await RunOfAsync(sensor, claimed.State, timeout.Token);
                outcome = await runner.PollAsync(run, host, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                outcome = new SensorPollOutcome(claimed.State, $"the poll did not finish within {_options.PollTimeout.TotalSeconds:0.#} s");
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                outcome = new SensorPollOutcome(claimed.State, ex.Message);
            }
        }

        var ended = _time.GetUtcNow();
        var interval = Clamp(outcome.PollInterval ?? sensor.PollInterval);
        var next = claimed with { Holder = null, LeaseUntil = null, LastPoll = ended, NextPoll = ended + interval, Polls = claimed.Polls + 1 };
        if (outcome.LongRunning)
        {
            next = next with
            {
                LongRunning = true,
                LongRunningCode = CodeOf(sensor),
                NextPoll = null,
                NextTick = null,
                Status = _options.RunLongRunning ? SensorStates.LongRunning : SensorStates.NotRun,
                LastError = _options.RunLongRunning ? null : LongRunningInFunctions,
            };
            if (!_options.RunLongRunning)
            {
                _logger.SensorNotRunHere(sensor.Ref, LongRunningInFunctions);
            }
        }
        else
        {
            var state = outcome.State;
            var error = ErrorText(outcome.Error, host);
            if (state.ToJsonString().Length > _options.MaxStateBytes)
            {
                state = claimed.State;
                error ??= $"the sensor's state is over {_options.MaxStateBytes} bytes: it was not kept (keep large data in the datastore)";
            }

            next = error is not null
                ? next with { State = state, Status = SensorStates.Failing, LastError = error, LastErrorAt = ended, ConsecutiveFailures = claimed.ConsecutiveFailures + 1 }
                : next with { State = state, Status = SensorStates.Running, ConsecutiveFailures = 0 };
            if (error is null && host?.LastRefusal is { } refusal)
            {
                // The poll went on past a refused dispatch; the refusal is what an operator needs to see.
                next = next with { LastError = ErrorText(refusal, host), LastErrorAt = ended };
            }

            if (error is not null)
            {
                _logger.SensorPollFailed(sensor.Ref, next.ConsecutiveFailures, error);
            }
            else
            {
                _logger.SensorPolled(sensor.Ref, watch.ElapsedMilliseconds);
            }
        }

        // With ticks, the next poll is a tick the record names. It is published first: should the write then fail, it
        // is a copy the record does not name, dropped; should the publish fail, the tick that brought this poll is
        // delivered again and finds the sensor as it was (at least once, never lost).
        var tick = ticks && next.NextPoll is { } due ? SensorTick.For(sensor.Ref, due) : null;
        if (tick is not null)
        {
            await PublishTickAsync(tick, CancellationToken.None);
        }

        next = next with { NextTick = tick?.Id ?? (next.LongRunning ? null : next.NextTick) };
        var written = await _store.TryWriteAsync(next, CancellationToken.None);
        for (var attempt = 0; written is null && attempt < 3; attempt++)
        {
            // Written meanwhile without taking this claim (an operator enabling or disabling it): this poll's outcome
            // goes on top of that write, keeping its choice. A record claimed again since (its hold is not this
            // claim's) is another poll's.
            if (await _store.GetAsync(sensor.Ref, CancellationToken.None) is not { } latest || latest.Holder != InstanceId || latest.LeaseUntil != claimed.LeaseUntil)
            {
                break;
            }

            written = await _store.TryWriteAsync(next with { Enabled = latest.Enabled, Version = latest.Version }, CancellationToken.None);
        }

        if (written is null)
        {
            _logger.SensorLeaseLost(sensor.Ref);
        }
    }

    /// <summary>
    /// An operator enables or disables a sensor (StackStorm's <c>st2 sensor enable|disable</c>): kept in its record
    /// until changed again, whatever its YAML says. A poll or run under way ends first; a disabled long-running sensor
    /// stops at its next renewal. Null when no loaded sensor has that ref.
    /// </summary>
    public async Task<SensorRecord?> SetEnabledAsync(string sensorRef, bool enabled, CancellationToken cancellationToken)
    {
        if (_catalog.Sensors.FirstOrDefault(s => s.Ref == sensorRef) is not { } sensor)
        {
            return null;
        }

        for (var attempt = 1; ; attempt++)
        {
            var now = _time.GetUtcNow();
            var record = await _store.GetAsync(sensorRef, cancellationToken) ?? new SensorRecord(sensorRef);
            // With ticks, enabling starts a chain of its own: the old chain's ticks are gone, and their ids were seen.
            var tick = enabled && Ticks && !(record.LongRunning && record.LongRunningCode == CodeOf(sensor))
                ? SensorTick.For(sensorRef, record.NextPoll is { } due && due > now ? due : now) : null;
            if (tick is not null)
            {
                // Published before the record names it: should the write fail, it is a copy, dropped when handled.
                await PublishTickAsync(tick, CancellationToken.None, again: true);
            }

            var written = await _store.TryWriteAsync(record with { Enabled = enabled, NextTick = tick?.Id ?? record.NextTick }, CancellationToken.None);
            if (written is null)
            {
                // Written meanwhile (a poll ended, a renewal): again from what it wrote; a record that never holds
                // still is a store that does not answer as it should.
                if (attempt == 10)
                {
                    throw new InvalidOperationException($"sensor {sensorRef}: its record changed under each of 10 writes; try again");
                }

                continue;
            }

            _logger.SensorEnabledChanged(sensorRef, enabled);
            return written;
        }
    }

    /// <summary>The longest a tick is delayed (Storage Queues hide a message for at most 7 days); a later poll is reached in hops.</summary>
    public static readonly TimeSpan MaxTickDelay = TimeSpan.FromDays(6);

    /// <summary>
    /// With ticks: publishes each polling sensor's next poll as a tick on the timers queue, the one its record names
    /// (at a host's start, and hourly, mending a chain a crash broke; copies of a tick are dropped when handled).
    /// Returns how many.
    /// </summary>
    public async Task<int> ArmAsync(CancellationToken cancellationToken)
    {
        if (!Ticks)
        {
            return 0;
        }

        var armed = 0;
        foreach (var (sensor, _) in Runnable)
        {
            try
            {
                if (await ArmOneAsync(sensor, cancellationToken))
                {
                    armed++;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                _logger.SensorRoundFailed(ex); // the next round tries again; the other sensors go on
            }
        }

        return armed;
    }

    private async Task<bool> ArmOneAsync(SensorDefinition sensor, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var record = await _store.GetAsync(sensor.Ref, cancellationToken) ?? new SensorRecord(sensor.Ref);
        if (!IsEnabled(sensor, record) || (record.LongRunning && record.LongRunningCode == CodeOf(sensor)) || record.IsHeld(now))
        {
            return false; // not polled; or polled now, and that poll publishes the next tick
        }

        var due = record.NextPoll ?? now;
        if (record.NextTick is { } expected)
        {
            // Under a message id of its own: the chain's tick may have been seen already (a lost chain), and a
            // transport's duplicate detection would drop it again. A copy still pending is dropped when handled.
            await PublishTickAsync(new SensorTick(sensor.Ref, due, expected), cancellationToken, again: true);
            return true;
        }

        var tick = SensorTick.For(sensor.Ref, due);
        if (await _store.TryWriteAsync(record with { NextTick = tick.Id }, cancellationToken) is null)
        {
            return false; // written meanwhile by a poll, which publishes its own next tick
        }

        await PublishTickAsync(tick, cancellationToken);
        return true;
    }

    /// <summary>
    /// Handles a sensor's tick: polls it when this is the tick its record expects, or drops a copy. A tick for a
    /// sensor no longer enabled or loaded ends its chain.
    /// </summary>
    public async Task HandleTickAsync(Messaging.BusMessage message, CancellationToken cancellationToken)
    {
        var tick = Messaging.StormEvents.DecodeSensorTick(message);
        if (_catalog.Sensors.FirstOrDefault(s => s.Ref == tick.Sensor) is not { } sensor)
        {
            _logger.SensorTickDropped(tick.Id, "the sensor is not in the loaded packs");
            return;
        }

        var now = _time.GetUtcNow();
        var record = await _store.GetAsync(sensor.Ref, cancellationToken);
        if (Stale(tick, sensor, record) is { } why)
        {
            _logger.SensorTickDropped(tick.Id, why);
            return;
        }

        if (RunnerFor(sensor) is not { } runner)
        {
            // Loaded, but no runner of this host runs it (a host sharing the queue): for a host that does, for an
            // hour; then the hourly re-arm of a host that runs it takes over.
            if (now - (record?.NextPoll ?? tick.At) < TimeSpan.FromHours(1))
            {
                await PublishTickAsync(tick with { At = now + TimeSpan.FromSeconds(5) }, cancellationToken, again: true);
            }

            return;
        }

        if (tick.At - now > TimeSpan.FromMinutes(1))
        {
            await PublishTickAsync(tick, cancellationToken, again: true); // early by more than clocks differ: a hop
            return;
        }

        if (await PollIfDueAsync(sensor, runner, cancellationToken, tick))
        {
            return;
        }

        // Not polled. Held by a poll: that poll publishes the next tick, but its instance may have died, so this tick
        // comes back once the hold lapses (then dropped, if the poll went on). Otherwise polled meanwhile by a host's
        // loop, or not due yet by the record: the chain goes on from the record.
        var latest = await _store.GetAsync(sensor.Ref, cancellationToken);
        if (Stale(tick, sensor, latest) is { } moved)
        {
            _logger.SensorTickDropped(tick.Id, moved);
            return;
        }

        if (latest?.IsHeld(now) == true && latest.LeaseUntil is { } lapses)
        {
            await PublishTickAsync(tick with { At = lapses + TimeSpan.FromSeconds(1) }, cancellationToken, again: true);
            return;
        }

        await ArmOneAsync(sensor, cancellationToken);
    }

    // Why a tick has nothing to do: its sensor disabled, or found long-running (supervised, not polled), or its chain
    // gone on with another tick.
    private string? Stale(SensorTick tick, SensorDefinition sensor, SensorRecord? record) =>
        !IsEnabled(sensor, record) ? "the sensor is disabled"
        : record is { LongRunning: true } && record.LongRunningCode == CodeOf(sensor) ? "the sensor is long-running"
        : record?.NextTick is { } expected && expected != tick.Id ? $"the sensor's chain goes on with {expected}"
        : null;

    // again: the tick was published before under its id, and a transport's duplicate detection would drop it, so this
    // message has an id of its own (ticks are matched by the id they carry, not the message's).
    private Task PublishTickAsync(SensorTick tick, CancellationToken cancellationToken, bool again = false)
    {
        var now = _time.GetUtcNow();
        var delay = tick.At - now;
        var (id, wait) = delay > MaxTickDelay ? ($"{tick.Id}.hop-{now.UtcTicks}", MaxTickDelay)
            : again ? ($"{tick.Id}.again-{now.UtcTicks}", delay)
            : (tick.Id, delay);
        return _bus!.PublishAsync(Messaging.StormQueues.Timers, Messaging.StormEvents.Encode(tick, id) with { Delay = wait > TimeSpan.Zero ? wait : TimeSpan.Zero }, cancellationToken);
    }

    /// <summary>
    /// Runs the long-running sensors this host can hold, each as one supervised task restarted with a backoff when it
    /// ends or fails, until <paramref name="cancellationToken"/> fires; checks for more every <paramref name="interval"/>.
    /// Only where <see cref="SensorOptions.RunLongRunning"/> is set.
    /// </summary>
    public async Task SuperviseLongRunningAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        var supervised = new Dictionary<string, Task>(StringComparer.Ordinal);
        using var ticker = new PeriodicTimer(interval, _time);
        try
        {
            do
            {
                foreach (var (sensor, runner) in Runnable)
                {
                    if (supervised.TryGetValue(sensor.Ref, out var task) && !task.IsCompleted)
                    {
                        continue;
                    }

                    try
                    {
                        var record = await _store.GetAsync(sensor.Ref, cancellationToken);
                        if (record is { LongRunning: true } && record.LongRunningCode == CodeOf(sensor) && IsEnabled(sensor, record))
                        {
                            supervised[sensor.Ref] = Task.Run(() => SuperviseAsync(sensor, runner, cancellationToken), CancellationToken.None);
                        }
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                    {
                        // The store is down for a moment: the next check tries again; supervision goes on.
                        _logger.SensorRoundFailed(ex);
                    }
                }
            }
            while (await ticker.WaitForNextTickAsync(cancellationToken));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(supervised.Values);
    }

    // Holds the sensor while it runs (renewing the hold); returns when another instance holds it or the host stops.
    private async Task SuperviseAsync(SensorDefinition sensor, ISensorRunner runner, CancellationToken cancellationToken)
    {
        var backoff = TimeSpan.FromSeconds(1);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                string? error;
                SensorHost? host = null;
                var started = _time.GetUtcNow();
                try
                {
                    var now = _time.GetUtcNow();
                    var record = await _store.GetAsync(sensor.Ref, cancellationToken) ?? new SensorRecord(sensor.Ref) { LongRunning = true };
                    if (record.HeldBySomeoneElse(InstanceId, now) || !record.LongRunning || !IsEnabled(sensor, record))
                    {
                        return; // the next check tries again (a sensor no longer long-running is polled instead)
                    }

                    var held = await _store.TryWriteAsync(record with { Holder = InstanceId, LeaseUntil = now + _options.LongRunningLease, Status = SensorStates.LongRunning }, cancellationToken);
                    if (held is null)
                    {
                        return;
                    }

                    (var run, host) = await RunOfAsync(sensor, held.State, cancellationToken);
                    started = _time.GetUtcNow();
                    var (stillHeld, runError) = await RunHeldAsync(sensor, runner, run, host, held, cancellationToken);
                    if (!stillHeld)
                    {
                        return; // the hold was lost: another instance runs it now
                    }

                    error = runError;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    await GiveBackAsync(sensor.Ref);
                    return;
                }
                catch (Exception ex)
                {
                    // The store or the runner broke: counted as a failed run, with the same backoff.
                    error = ex.Message;
                }

                if (cancellationToken.IsCancellationRequested)
                {
                    await GiveBackAsync(sensor.Ref);
                    return;
                }

                var ended = _time.GetUtcNow();
                // A run that lasted a while starts the backoff over.
                backoff = ended - started > _options.MaxRestartBackoff ? TimeSpan.FromSeconds(1) : backoff;
                error = ErrorText(error ?? "run() returned", host);
                try
                {
                    var latest = await _store.GetAsync(sensor.Ref, CancellationToken.None) ?? new SensorRecord(sensor.Ref) { LongRunning = true };
                    await _store.TryWriteAsync(latest with
                    {
                        Holder = null,
                        LeaseUntil = null,
                        Status = SensorStates.Failing,
                        LastError = error,
                        LastErrorAt = ended,
                        ConsecutiveFailures = latest.ConsecutiveFailures + 1,
                    }, CancellationToken.None);
                }
                catch (Exception ex)
                {
                    _logger.SensorRoundFailed(ex); // its hold lapses at its lease
                }

                _logger.SensorRunEnded(sensor.Ref, error, backoff);
                await Task.Delay(backoff, _time, cancellationToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxRestartBackoff.Ticks));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    // Runs the held sensor until it ends, renewing the hold; Held is false when the hold was lost. Whatever happens here (the
    // store failing, the host stopping), the run is stopped before this returns: no run is ever left behind.
    private async Task<(bool Held, string? Error)> RunHeldAsync(SensorDefinition sensor, ISensorRunner runner, SensorRun run, SensorHost host,
        SensorRecord held, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = runner.RunAsync(run, host, stop.Token);
        try
        {
            var current = held;
            while (!running.IsCompleted)
            {
                await Task.WhenAny(running, Task.Delay(_options.LongRunningLease / 3, _time, cancellationToken)).ContinueWith(_ => { }, TaskScheduler.Default);
                if (running.IsCompleted || cancellationToken.IsCancellationRequested)
                {
                    break;
                }

                if (current.LongRunningCode != CodeOf(sensor))
                {
                    // Its code changed (deployed anew): the old run stops and gives its hold back, and the next
                    // round finds out what the new code is.
                    await _store.TryWriteAsync(current with { Holder = null, LeaseUntil = null }, CancellationToken.None);
                    return (false, null);
                }

                var renewed = await _store.TryWriteAsync(current with { LeaseUntil = _time.GetUtcNow() + _options.LongRunningLease }, CancellationToken.None);
                if (renewed is null && await _store.GetAsync(sensor.Ref, CancellationToken.None) is { } latest && latest.Holder == InstanceId)
                {
                    // Written without taking the hold: an operator's choice. Disabled, it stops here and gives the hold back.
                    if (!IsEnabled(sensor, latest))
                    {
                        await _store.TryWriteAsync(latest with { Holder = null, LeaseUntil = null, Status = SensorStates.Disabled }, CancellationToken.None);
                        return (false, null);
                    }

                    renewed = await _store.TryWriteAsync(latest with { LeaseUntil = _time.GetUtcNow() + _options.LongRunningLease }, CancellationToken.None);
                }

                if (renewed is null)
                {
                    _logger.SensorLeaseLost(sensor.Ref);
                    return (false, null);
                }

                current = renewed;
            }

            try
            {
                return (true, await running);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return (true, ex.Message);
            }
        }
        finally
        {
            if (!running.IsCompleted)
            {
                await stop.CancelAsync();
                await running.ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    // The host stops: the hold is given back at once, so a restarted host need not wait out the lease.
    private async Task GiveBackAsync(string sensorRef)
    {
        try
        {
            if (await _store.GetAsync(sensorRef, CancellationToken.None) is { } latest && latest.Holder == InstanceId)
            {
                await _store.TryWriteAsync(latest with { Holder = null, LeaseUntil = null }, CancellationToken.None);
            }
        }
        catch (Exception ex)
        {
            _logger.SensorRoundFailed(ex);
        }
    }
}
