using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace ServerlessStorm.Engine.Local;

/// <summary>
/// A SQLite file holding state of the local stack that must outlive its process (the in-process bus's messages, the
/// webhook delivery ids). One connection does all the work in turn; the writes of callers that arrive together are
/// committed as one transaction, so a busy pipeline pays one commit for many writes. A write whose task has completed
/// survives the process being killed (write-ahead log, <c>synchronous=NORMAL</c>: the operating system has it); a power
/// cut can lose the last commits, as it can the audit journal's last segment.
/// </summary>
public sealed class LocalDatabase : IAsyncDisposable
{
    private const int MaxBatch = 512;

    private readonly SqliteConnection _connection;
    private readonly Channel<IWork> _work = Channel.CreateUnbounded<IWork>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _worker;

    private LocalDatabase(SqliteConnection connection, string path)
    {
        _connection = connection;
        FullPath = path;
        _worker = Task.Run(WorkAsync);
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
            setup.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;" + schema;
            setup.ExecuteNonQuery();
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw new InvalidDataException($"the local database '{path}' cannot be opened: {ex.Message}", ex);
        }

        return new LocalDatabase(connection, path);
    }

    /// <summary>A database that lives in memory only, for as long as this object (tests, and hosts whose state dies with them anyway).</summary>
    public static LocalDatabase OpenInMemory(string schema)
    {
        var connection = new SqliteConnection("Data Source=:memory:");
        connection.Open();
        using var setup = connection.CreateCommand();
        setup.CommandText = schema;
        setup.ExecuteNonQuery();
        return new LocalDatabase(connection, ":memory:");
    }

    /// <summary>Runs <paramref name="work"/> on the connection inside a transaction shared with other callers' work.</summary>
    public Task<T> RunAsync<T>(Func<SqliteConnection, T> work)
    {
        var item = new Work<T>(work);
        return _work.Writer.TryWrite(item) ? item.Done.Task : Task.FromException<T>(new ObjectDisposedException(nameof(LocalDatabase)));
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

    private async Task WorkAsync()
    {
        var batch = new List<IWork>(MaxBatch);
        while (await _work.Reader.WaitToReadAsync())
        {
            while (batch.Count < MaxBatch && _work.Reader.TryRead(out var next))
            {
                batch.Add(next);
            }

            try
            {
                using var transaction = _connection.BeginTransaction();
                foreach (var item in batch)
                {
                    item.Run(_connection);
                }

                transaction.Commit();
                batch.ForEach(item => item.Complete());
            }
            catch (Exception ex)
            {
                // One caller's failure must not fail the others': run them again one transaction each.
                foreach (var item in batch)
                {
                    try
                    {
                        using var transaction = _connection.BeginTransaction();
                        item.Run(_connection);
                        transaction.Commit();
                        item.Complete();
                    }
                    catch (Exception single)
                    {
                        item.Fail(batch.Count == 1 ? ex : single);
                    }
                }
            }

            batch.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _work.Writer.TryComplete();
        await _worker;
        await _connection.DisposeAsync();
    }

    private interface IWork
    {
        void Run(SqliteConnection connection);

        void Complete();

        void Fail(Exception error);
    }

    private sealed class Work<T>(Func<SqliteConnection, T> work) : IWork
    {
        private T _result = default!;

        public TaskCompletionSource<T> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Run(SqliteConnection connection) => _result = work(connection);

        public void Complete() => Done.TrySetResult(_result);

        public void Fail(Exception error) => Done.TrySetException(error);
    }
}
