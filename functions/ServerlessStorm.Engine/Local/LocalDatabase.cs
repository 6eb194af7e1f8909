using Microsoft.Data.Sqlite;

namespace ServerlessStorm.Engine.Local;

/// <summary>
/// A SQLite file holding state of the local stack that must outlive its process (the in-process bus's messages, the
/// webhook delivery ids). One connection, used by one caller at a time, each call one transaction. A commit costs
/// about 25 µs here: the write-ahead log with <c>synchronous=NORMAL</c> hands the commit to the operating system
/// without waiting for the disk. So a write that has returned survives the process being killed; a power cut can lose
/// the last commits, as it can the audit journal's last segment.
/// </summary>
public sealed class LocalDatabase : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();
    private readonly Timer? _checkpoints;
    private readonly SqliteConnection? _checkpointer;
    private bool _disposed;

    private LocalDatabase(SqliteConnection connection, string path, bool checkpointApart)
    {
        _connection = connection;
        FullPath = path;
        if (checkpointApart)
        {
            // The log is copied into the database file (and that synced) by a connection of its own once a second,
            // not by whichever commit happens to fill it: no caller waits for a disk sync.
            _checkpointer = new SqliteConnection(connection.ConnectionString);
            _checkpoints = new Timer(_ => Checkpoint(_checkpointer), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        }
    }

    private void Checkpoint(SqliteConnection checkpointer)
    {
        try
        {
            if (checkpointer.State != System.Data.ConnectionState.Open)
            {
                checkpointer.Open();
            }

            using var command = checkpointer.CreateCommand();
            command.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
            command.ExecuteNonQuery();
        }
        catch (SqliteException)
        {
            // The next one tries again; the log only grows meanwhile.
        }
    }

    public string FullPath { get; }

    /// <summary>Opens (creating when missing) the database at <paramref name="path"/> and applies <paramref name="schema"/> (idempotent DDL).</summary>
    public static LocalDatabase Open(string path, string schema)
    {
        path = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        try
        {
            connection.Open();
            using var setup = connection.CreateCommand();
            setup.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0;" + schema;
            setup.ExecuteNonQuery();
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw new InvalidDataException($"the local database '{path}' cannot be opened: {ex.Message}", ex);
        }

        return new LocalDatabase(connection, path, checkpointApart: true);
    }

    /// <summary>A database that lives in memory only, for as long as this object (tests, and hosts whose state dies with them anyway).</summary>
    public static LocalDatabase OpenInMemory(string schema)
    {
        var connection = new SqliteConnection("Data Source=:memory:");
        connection.Open();
        using var setup = connection.CreateCommand();
        setup.CommandText = schema;
        setup.ExecuteNonQuery();
        return new LocalDatabase(connection, ":memory:", checkpointApart: false);
    }

    /// <summary>Runs <paramref name="work"/> on the connection as one transaction, committed when it returns.</summary>
    public T Run<T>(Func<SqliteConnection, T> work)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var transaction = _connection.BeginTransaction();
            var result = work(_connection);
            transaction.Commit();
            return result;
        }
    }

    /// <summary>A command on the connection with its parameters bound (names as in the SQL, values in order).</summary>
    public static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    public void Dispose()
    {
        if (_checkpoints is not null)
        {
            using var stopped = new ManualResetEvent(false);
            if (_checkpoints.Dispose(stopped))
            {
                stopped.WaitOne();
            }

            _checkpointer!.Dispose();
        }

        lock (_gate)
        {
            if (!_disposed)
            {
                _disposed = true;
                _connection.Dispose();
            }
        }
    }
}
