using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Local;

namespace ServerlessStorm.Engine.Messaging;

/// <summary>
/// The in-process bus of <c>storm serve</c>, kept in a local SQLite file: a message is written there before
/// <see cref="PublishAsync"/> returns and deleted only when its handler succeeded, so what a killed process had
/// accepted is delivered again when the next one opens the file — before anything published after it. Delivery
/// within the process goes through memory (no polling). A message whose handler keeps failing, or that cannot be read,
/// moves to the dead letters with the reason, where <see cref="ReplayDeadLettersAsync"/> finds it.
/// </summary>
public class SqliteMessageBus : IMessageBus, IAsyncDisposable
{
    public const string FileName = "bus.db";

    protected const string Schema = """
        CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL,
            deliveries INTEGER NOT NULL DEFAULT 0, visible_at INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL,
            deliveries INTEGER NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS dead_letters_by_queue ON dead_letters (queue, id);
        """;

    private readonly LocalDatabase _database;
    private readonly BusOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Channel<Stored>> _queues = new(StringComparer.Ordinal);

    // Handled messages are deleted together, a few milliseconds later: one commit for many. A crash meanwhile only
    // means those are delivered once more, and the handlers are idempotent.
    private readonly ConcurrentQueue<(string Queue, long Seq)> _handled = new();
    private readonly SemaphoreSlim _handledSignal = new(0);
    private readonly CancellationTokenSource _closing = new();
    private Task _deleting = Task.CompletedTask;

    // The messages a consumer holds (being handled, or handled and not yet deleted): not waiting, so never the oldest.
    private readonly ConcurrentDictionary<long, byte> _taken = new();

    // Sequence numbers are handed out here, not by the database, so a message can be delivered while its insert is
    // still being committed (the database runs work in order, so its acknowledgement can never overtake the insert).
    private long _lastSeq;

    protected SqliteMessageBus(LocalDatabase database, BusOptions options, TimeProvider time, ILogger logger)
    {
        _database = database;
        _options = options;
        _time = time;
        _logger = logger;
        _deleting = Task.Run(DeleteHandledAsync);
    }

    /// <summary>Messages taken up from the file at open: what an earlier process accepted and had not finished.</summary>
    public int Recovered { get; private set; }

    /// <summary>Opens the bus in <paramref name="directory"/> and queues again every message an earlier process left in it.</summary>
    public static SqliteMessageBus Open(string directory, BusOptions? options = null, TimeProvider? time = null, ILogger<SqliteMessageBus>? logger = null)
    {
        var database = LocalDatabase.Open(Path.Combine(directory, FileName), Schema);
        var bus = new SqliteMessageBus(database, options ?? new BusOptions(), time ?? TimeProvider.System, logger ?? (ILogger)NullLogger.Instance);
        bus._lastSeq = database.Run(connection =>
        {
            using var max = LocalDatabase.Command(connection, "SELECT COALESCE(MAX(seq), 0) FROM messages");
            return (long)max.ExecuteScalar()!;
        });
        var left = database.Run(connection =>
        {
            using var select = LocalDatabase.Command(connection, "SELECT seq, queue, id, body, deliveries, visible_at FROM messages ORDER BY seq");
            using var reader = select.ExecuteReader();
            var rows = new List<(string Queue, Stored Message, long VisibleAt)>();
            while (reader.Read())
            {
                rows.Add((reader.GetString(1), new Stored(reader.GetInt64(0), new BusMessage(reader.GetString(2), (byte[])reader[3], reader.GetInt32(4))), reader.GetInt64(5)));
            }

            return rows;
        });
        foreach (var (queue, message, visibleAt) in left)
        {
            bus.Schedule(queue, message, DateTimeOffset.FromUnixTimeMilliseconds(visibleAt) - bus._time.GetUtcNow());
        }

        bus.Recovered = left.Count;
        if (left.Count > 0)
        {
            bus._logger.LocalMessagesRecovered(left.Count, database.FullPath);
        }

        return bus;
    }

    public Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
    {
        var visibleAt = (_time.GetUtcNow() + (message.Delay > TimeSpan.Zero ? message.Delay : TimeSpan.Zero)).ToUnixTimeMilliseconds();
        var seq = Interlocked.Increment(ref _lastSeq);
        _database.Run(connection => InsertRow(connection, queue, seq, message.Id, message.Body.ToArray(), visibleAt));
        Schedule(queue, new Stored(seq, message with { DeliveryCount = 0, Delay = TimeSpan.Zero }), message.Delay);
        return Task.CompletedTask;
    }

    private static int InsertRow(SqliteConnection connection, string queue, long seq, string id, byte[] body, long visibleAt)
    {
        using var insert = LocalDatabase.Command(connection, "INSERT INTO messages (seq, queue, id, body, visible_at) VALUES ($seq, $queue, $id, $body, $at)",
            ("$seq", seq), ("$queue", queue), ("$id", id), ("$body", body), ("$at", visibleAt));
        return insert.ExecuteNonQuery();
    }

    public Task<IAsyncDisposable> SubscribeAsync(string queue, BusHandler handler, CancellationToken cancellationToken)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Queue(queue);
        var workers = Enumerable.Range(0, Math.Max(1, _options.Concurrency))
            .Select(_ => Task.Run(() => WorkAsync(queue, channel, handler, stop.Token), CancellationToken.None))
            .ToArray();
        return Task.FromResult<IAsyncDisposable>(new Subscription(stop, workers));
    }

    public Task<IReadOnlyList<DeadLetter>> ListDeadLettersAsync(string queue, int limit, CancellationToken cancellationToken) =>
        Task.FromResult(_database.Run<IReadOnlyList<DeadLetter>>(connection =>
        {
            using var select = LocalDatabase.Command(connection, "SELECT id, reason, deliveries, at FROM dead_letters WHERE queue = $queue ORDER BY seq LIMIT $limit",
                ("$queue", queue), ("$limit", limit));
            using var reader = select.ExecuteReader();
            var found = new List<DeadLetter>();
            while (reader.Read())
            {
                found.Add(new DeadLetter(queue, reader.GetString(0), reader.GetString(1), reader.GetInt32(2), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3))));
            }

            return found;
        }));

    public Task<int> ReplayDeadLettersAsync(string queue, string? messageId, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var replayed = _database.Run(connection =>
        {
            var which = messageId is null ? "queue = $queue" : "queue = $queue AND id = $id";
            var rows = new List<Stored>();
            using (var select = LocalDatabase.Command(connection, $"SELECT id, body FROM dead_letters WHERE {which} ORDER BY seq", ("$queue", queue), ("$id", messageId ?? "")))
            using (var reader = select.ExecuteReader())
            {
                while (reader.Read())
                {
                    rows.Add(new Stored(Interlocked.Increment(ref _lastSeq), new BusMessage(reader.GetString(0), (byte[])reader[1], 0)));
                }
            }

            foreach (var row in rows)
            {
                InsertRow(connection, queue, row.Seq, row.Message.Id, row.Message.Body.ToArray(), now);
            }

            using var delete = LocalDatabase.Command(connection, $"DELETE FROM dead_letters WHERE {which}", ("$queue", queue), ("$id", messageId ?? ""));
            delete.ExecuteNonQuery();
            return rows;
        });
        foreach (var message in replayed)
        {
            Schedule(queue, message, TimeSpan.Zero);
        }

        return Task.FromResult(replayed.Count);
    }

    /// <summary>
    /// Exact: every row of the queue (waiting, delayed or being handled); the oldest is the due row no consumer holds
    /// that fell due first. A message that failed waits again from when its retry fell due.
    /// </summary>
    public Task<QueueBacklog> GetBacklogAsync(string queue, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        return Task.FromResult(_database.Run(connection =>
        {
            using var count = LocalDatabase.Command(connection, "SELECT COUNT(*) FROM messages WHERE queue = $queue", ("$queue", queue));
            var depth = (long)count.ExecuteScalar()!;

            // The held rows are among the first few due ones (a consumer takes what is due in order), so a few more
            // than are held now are enough to pass them.
            using var due = LocalDatabase.Command(connection, "SELECT seq, visible_at FROM messages WHERE queue = $queue AND visible_at <= $now ORDER BY visible_at, seq LIMIT $limit",
                ("$queue", queue), ("$now", now), ("$limit", _taken.Count + 64));
            using var reader = due.ExecuteReader();
            while (reader.Read())
            {
                if (!_taken.ContainsKey(reader.GetInt64(0)))
                {
                    return new QueueBacklog(depth, DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)));
                }
            }

            return new QueueBacklog(depth, null);
        }));
    }

    private Channel<Stored> Queue(string name) => _queues.GetOrAdd(name, _ => Channel.CreateUnbounded<Stored>());

    private void Schedule(string queue, Stored message, TimeSpan delay)
    {
        var channel = Queue(queue);
        if (delay <= TimeSpan.Zero)
        {
            channel.Writer.TryWrite(message);
            return;
        }

        // Kept in the file meanwhile: a restart schedules it again for what is left of its delay.
        _ = Task.Delay(delay, _time, CancellationToken.None).ContinueWith(_ => channel.Writer.TryWrite(message), TaskScheduler.Default);
    }

    private async Task WorkAsync(string queue, Channel<Stored> channel, BusHandler handler, CancellationToken stop)
    {
        try
        {
            await foreach (var received in channel.Reader.ReadAllAsync(stop))
            {
                var message = received.Message with { DeliveryCount = received.Message.DeliveryCount + 1 };
                _taken[received.Seq] = 0;
                try
                {
                    await handler(message, stop);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    // Stopping mid-message: it stays in the file (and in memory for a subscriber that comes later).
                    _taken.TryRemove(received.Seq, out _);
                    channel.Writer.TryWrite(received);
                    return;
                }
                catch (Exception ex)
                {
                    Failed(queue, received with { Message = message }, ex);
                    _taken.TryRemove(received.Seq, out _);
                    continue;
                }

                _handled.Enqueue((queue, received.Seq));
                if (_handledSignal.CurrentCount == 0)
                {
                    _handledSignal.Release();
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    private async Task DeleteHandledAsync()
    {
        var closing = false;
        while (!closing || !_handled.IsEmpty)
        {
            try
            {
                if (!closing)
                {
                    await _handledSignal.WaitAsync(_closing.Token);
                    await Task.Delay(TimeSpan.FromMilliseconds(5), _closing.Token); // let a few more gather
                }
            }
            catch (OperationCanceledException)
            {
                closing = true;
            }

            var batch = new List<(string Queue, long Seq)>();
            // Small transactions: publishers (a webhook being answered) wait for the same connection.
            while (batch.Count < 64 && _handled.TryDequeue(out var next))
            {
                batch.Add(next);
            }

            if (batch.Count == 0)
            {
                continue;
            }

            try
            {
                _database.Run(connection =>
                {
                    using var delete = LocalDatabase.Command(connection, "DELETE FROM messages WHERE seq = $seq", ("$seq", 0L));
                    foreach (var (_, seq) in batch)
                    {
                        delete.Parameters["$seq"].Value = seq;
                        delete.ExecuteNonQuery();
                        _taken.TryRemove(seq, out _);
                    }

                    return batch.Count;
                });
            }
            catch (Exception ex) when (ex is SqliteException or ObjectDisposedException)
            {
                // Handled but still in the file: the next start delivers them again, and the handlers are idempotent.
                _logger.LocalMessageOutcomeNotWritten(batch.Count, batch[0].Queue, ex.Message);
            }

            if (!_handled.IsEmpty && !closing)
            {
                _handledSignal.Release();
            }
        }
    }

    private void Failed(string queue, Stored failed, Exception error)
    {
        var message = failed.Message;
        var deadLetter = error is PoisonMessageException || message.DeliveryCount >= _options.MaxDeliveryCount;
        try
        {
            if (deadLetter)
            {
                var reason = DeadLetterReason.Of(error, message.DeliveryCount);
                var at = _time.GetUtcNow().ToUnixTimeMilliseconds();
                _database.Run(connection =>
                {
                    using var move = LocalDatabase.Command(connection,
                        "INSERT INTO dead_letters (queue, id, body, deliveries, reason, at) SELECT queue, id, body, $deliveries, $reason, $at FROM messages WHERE seq = $seq; DELETE FROM messages WHERE seq = $seq",
                        ("$deliveries", message.DeliveryCount), ("$reason", reason), ("$at", at), ("$seq", failed.Seq));
                    return move.ExecuteNonQuery();
                });
                _logger.LocalMessageDeadLettered(message.Id, queue, message.DeliveryCount, reason);
                return;
            }

            var visibleAt = (_time.GetUtcNow() + _options.RetryDelay).ToUnixTimeMilliseconds();
            _database.Run(connection =>
            {
                using var update = LocalDatabase.Command(connection, "UPDATE messages SET deliveries = $deliveries, visible_at = $at WHERE seq = $seq",
                    ("$deliveries", message.DeliveryCount), ("$at", visibleAt), ("$seq", failed.Seq));
                return update.ExecuteNonQuery();
            });
        }
        catch (Exception ex) when (ex is SqliteException or ObjectDisposedException)
        {
            _logger.LocalMessageOutcomeNotWritten(1, queue, ex.Message);
            if (deadLetter)
            {
                return;
            }
        }

        _logger.LocalMessageRetrying(message.Id, queue, message.DeliveryCount, Diagnostics.ExceptionCause.Of(error));
        Schedule(queue, failed, _options.RetryDelay);
    }

    public async ValueTask DisposeAsync()
    {
        await _closing.CancelAsync();
        await _deleting; // the last handled ones deleted before the file closes
        _database.Dispose();
        _closing.Dispose();
        GC.SuppressFinalize(this);
    }

    private sealed record Stored(long Seq, BusMessage Message);

    private sealed class Subscription(CancellationTokenSource stop, Task[] workers) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            await Task.WhenAll(workers);
            stop.Dispose();
        }
    }
}
