using ServerlessStorm.Engine.Local;

namespace ServerlessStorm.Engine.Audit;

/// <summary>
/// The delivery ids a server that owns its audit has accepted, with the time each was first accepted, kept on its own
/// disk: a redelivery is recognised without asking storage (a webhook is answered while storage is slow or away), and
/// across restarts. Ids are kept for <see cref="Retention"/>; a redelivery later than that counts as a new delivery.
/// </summary>
public sealed class LocalDeliveryIds : IDisposable
{
    public const string FileName = "deliveries.db";

    private const string Schema = "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, first_accepted INTEGER NOT NULL) WITHOUT ROWID;";

    private readonly LocalDatabase _database;
    private long _nextPrune;

    public LocalDeliveryIds(string directory, TimeSpan retention)
    {
        _database = LocalDatabase.Open(Path.Combine(directory, FileName), Schema);
        Retention = retention;
    }

    public TimeSpan Retention { get; }

    /// <summary>When <paramref name="id"/> was first accepted; <paramref name="now"/> (and recorded) the first time.</summary>
    public Task<DateTimeOffset> FirstAcceptedAsync(string id, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var at = now.ToUnixTimeMilliseconds();
        var prune = at >= Interlocked.Read(ref _nextPrune) ? (now - Retention).ToUnixTimeMilliseconds() : (long?)null;
        if (prune is not null)
        {
            Interlocked.Exchange(ref _nextPrune, at + (long)TimeSpan.FromHours(1).TotalMilliseconds);
        }

        return Task.FromResult(_database.Run(connection =>
        {
            if (prune is { } before)
            {
                using var delete = LocalDatabase.Command(connection, "DELETE FROM deliveries WHERE first_accepted < $before", ("$before", before));
                delete.ExecuteNonQuery();
            }

            using var upsert = LocalDatabase.Command(connection,
                "INSERT INTO deliveries (id, first_accepted) VALUES ($id, $at) ON CONFLICT (id) DO UPDATE SET id = id RETURNING first_accepted",
                ("$id", id), ("$at", at));
            return DateTimeOffset.FromUnixTimeMilliseconds((long)upsert.ExecuteScalar()!);
        }));
    }

    public void Dispose() => _database.Dispose();
}
