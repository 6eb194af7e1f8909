using Azure;
using Azure.Data.Tables;

namespace ServerlessStorm.Azure.Audit;

/// <summary>
/// Group commit for one table: writes that arrive while earlier ones are in flight wait, and leave together as one
/// entity-group transaction per partition (up to 100 entities, and under the service's 4 MiB per transaction). Nothing waits for a batch to fill: an idle table
/// writes at once, a busy one writes in bigger batches. Each caller still gets its own outcome (ETag, or the
/// conflict or precondition failure of its own write); a failed write leaves the rest of its batch to be sent again.
/// Writes of a row that is already waiting become one write where that means the same (upserts, and merges that
/// do not check the row's version).
/// </summary>
public sealed class TableWriteBatcher(TableClient table, bool batched = true, int maxInFlight = 8)
{
    public const int MaxBatchSize = 100;

    /// <summary>
    /// What a transaction's entities may add up to, by <see cref="EstimatedBytes"/>: the service refuses a request
    /// over 4 MiB as a whole, and the estimate, generous as it is, leaves room for the request's own framing.
    /// </summary>
    public const long MaxBatchBytes = 3 * 1024 * 1024;

    private readonly object _gate = new();
    private readonly Dictionary<string, LinkedList<PendingWrite>> _pending = new(StringComparer.Ordinal);
    private readonly Queue<string> _ready = new();
    private int _inFlight;

    /// <summary>Writes in batches (true) or one entity per request (false: for comparison).</summary>
    public bool Batched => batched;

    /// <summary>Requests sent and entities written so far (for benchmarks).</summary>
    public (long Requests, long Entities) Counts => (Interlocked.Read(ref _requests), Interlocked.Read(ref _entities));

    private long _requests;
    private long _entities;

    /// <summary>
    /// Deletes a row whatever its version; one that is not there (never written, or deleted meanwhile) is no error,
    /// which is what a purge wants of every row it names.
    /// </summary>
    public async Task DeleteIfPresentAsync(string partition, string row, CancellationToken cancellationToken)
    {
        try
        {
            await WriteAsync(new TableTransactionAction(TableTransactionActionType.Delete, new TableEntity(partition, row), ETag.All), cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
        }
    }

    /// <summary>Completes when the write is stored; throws <see cref="RequestFailedException"/> when this write failed.</summary>
    public Task<Response> WriteAsync(TableTransactionAction action, CancellationToken cancellationToken)
    {
        var write = new PendingWrite(action);
        var outcome = write.Waiters[0].Task;
        lock (_gate)
        {
            var partition = action.Entity.PartitionKey;
            if (!_pending.TryGetValue(partition, out var queue))
            {
                _pending[partition] = queue = new();
                _ready.Enqueue(partition);
            }

            queue.AddLast(write);
            StartFlushes();
        }

        return outcome.WaitAsync(cancellationToken);
    }

    // Under _gate: start a flush for each ready partition while there is room in flight.
    private void StartFlushes()
    {
        while (_inFlight < maxInFlight && _ready.TryDequeue(out var partition))
        {
            var queue = _pending[partition];
            var batch = TakeBatch(queue);
            if (queue.Count == 0)
            {
                _pending.Remove(partition);
            }
            else
            {
                _ready.Enqueue(partition);
            }

            _inFlight++;
            _ = Task.Run(() => FlushAsync(partition, batch));
        }
    }

    // Takes the oldest writes of a partition, in order, with each row once: an upsert of a row already in the batch
    // is folded into it; any other second write of a row ends the batch (it goes in the next one).
    private List<PendingWrite> TakeBatch(LinkedList<PendingWrite> queue)
    {
        var batch = new List<PendingWrite>();
        var byRow = new Dictionary<string, PendingWrite>(StringComparer.Ordinal);
        var limit = batched ? MaxBatchSize : 1;
        var bytes = 0L;
        while (queue.First is { } node && batch.Count < limit)
        {
            var write = node.Value;
            var size = EstimatedBytes(write.Action.Entity);
            if (batch.Count > 0 && bytes + size > MaxBatchBytes)
            {
                break; // the next transaction takes it (alone, when it is that large by itself)
            }

            bytes += size;
            if (byRow.TryGetValue(write.Action.Entity.RowKey, out var earlier))
            {
                if (!earlier.TryFold(write))
                {
                    break;
                }
            }
            else
            {
                byRow[write.Action.Entity.RowKey] = write;
                batch.Add(write);
            }

            queue.RemoveFirst();
        }

        return batch;
    }

    /// <summary>An upper bound of an entity's size in a transaction's JSON (a string's characters may each be escaped).</summary>
    public static long EstimatedBytes(ITableEntity entity)
    {
        const int PerProperty = 64; // its name's quotes, the type annotation, separators
        var bytes = 512L + (2L * (entity.PartitionKey.Length + entity.RowKey.Length)); // the part's headers and keys
        if (entity is TableEntity properties)
        {
            foreach (var (name, value) in properties)
            {
                bytes += PerProperty + name.Length + value switch
                {
                    string text => JsonTextBytes(text),
                    byte[] binary => (binary.Length + 2) / 3 * 4,
                    BinaryData data => (data.ToMemory().Length + 2) / 3 * 4,
                    _ => 40,
                };
            }
        }
        else
        {
            bytes += 1024 * 1024; // an entity of unknown shape is assumed as large as an entity may be
        }

        return bytes;
    }

    // A string's size in the transaction's JSON: plain ASCII as itself; quotes and backslashes escaped with one
    // more byte; anything else (control, non-ASCII and HTML-sensitive characters) as a six-byte \uXXXX escape.
    private static long JsonTextBytes(string text)
    {
        var bytes = 2L;
        foreach (var c in text)
        {
            bytes += c switch
            {
                '"' or '\\' => 2,
                < ' ' or > '~' or '<' or '>' or '&' or '\'' or '+' or '`' => 6,
                _ => 1,
            };
        }

        return bytes;
    }

    private async Task FlushAsync(string partition, List<PendingWrite> batch)
    {
        List<PendingWrite> again = [];
        try
        {
            Interlocked.Increment(ref _requests);
            Interlocked.Add(ref _entities, batch.Count);
            if (batch.Count == 1)
            {
                batch[0].Succeed(await WriteOneAsync(batch[0].Action));
            }
            else
            {
                var responses = (await table.SubmitTransactionAsync(batch.Select(w => w.Action), CancellationToken.None)).Value;
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].Succeed(responses[i]);
                }
            }
        }
        catch (TableTransactionFailedException ex) when (ex.FailedTransactionActionIndex is int failed && failed < batch.Count)
        {
            batch[failed].Fail(ex);
            again = [.. batch.Where((_, i) => i != failed)];
        }
        catch (Exception ex)
        {
            foreach (var write in batch)
            {
                write.Fail(ex);
            }
        }
        finally
        {
            lock (_gate)
            {
                _inFlight--;
                if (again.Count > 0)
                {
                    // The rest of a failed batch goes first, in its order.
                    if (!_pending.TryGetValue(partition, out var queue))
                    {
                        _pending[partition] = queue = new();
                        _ready.Enqueue(partition);
                    }

                    for (var i = again.Count - 1; i >= 0; i--)
                    {
                        queue.AddFirst(again[i]);
                    }
                }

                StartFlushes();
            }
        }
    }

    private async Task<Response> WriteOneAsync(TableTransactionAction action)
    {
        var entity = action.Entity;
        return action.ActionType switch
        {
            TableTransactionActionType.Add => await table.AddEntityAsync(entity),
            TableTransactionActionType.UpsertReplace => await table.UpsertEntityAsync(entity, TableUpdateMode.Replace),
            TableTransactionActionType.UpsertMerge => await table.UpsertEntityAsync(entity, TableUpdateMode.Merge),
            TableTransactionActionType.UpdateReplace => await table.UpdateEntityAsync(entity, action.ETag, TableUpdateMode.Replace),
            TableTransactionActionType.UpdateMerge => await table.UpdateEntityAsync(entity, action.ETag, TableUpdateMode.Merge),
            TableTransactionActionType.Delete => await table.DeleteEntityAsync(entity.PartitionKey, entity.RowKey, action.ETag),
            var other => throw new NotSupportedException($"table write {other}"),
        };
    }

    private sealed class PendingWrite(TableTransactionAction action)
    {
        public TableTransactionAction Action { get; private set; } = action;

        public List<TaskCompletionSource<Response>> Waiters { get; } = [new(TaskCreationOptions.RunContinuationsAsynchronously)];

        /// <summary>
        /// Folds a later write of the same row into this one when one write has the same effect as the two in order:
        /// upserts, and merges into a row that exists whatever its version. False when they must stay two writes.
        /// </summary>
        public bool TryFold(PendingWrite later)
        {
            var first = Action.ActionType;
            var second = later.Action.ActionType;
            var firstIsUpsert = first is TableTransactionActionType.UpsertReplace or TableTransactionActionType.UpsertMerge;
            var firstIsBlindMerge = first == TableTransactionActionType.UpdateMerge && Action.ETag == ETag.All;
            var secondIsBlindMerge = second == TableTransactionActionType.UpdateMerge && later.Action.ETag == ETag.All;
            var secondIsUpsert = second is TableTransactionActionType.UpsertReplace or TableTransactionActionType.UpsertMerge;
            if (firstIsUpsert && secondIsUpsert && second == TableTransactionActionType.UpsertReplace)
            {
                Action = later.Action; // a replace wipes what came before
            }
            else if ((firstIsUpsert && (secondIsUpsert || secondIsBlindMerge)) || (firstIsBlindMerge && secondIsBlindMerge))
            {
                var merged = new TableEntity(Action.Entity.PartitionKey, Action.Entity.RowKey);
                foreach (var (key, value) in (TableEntity)Action.Entity)
                {
                    merged[key] = value;
                }

                foreach (var (key, value) in (TableEntity)later.Action.Entity)
                {
                    merged[key] = value;
                }

                Action = firstIsBlindMerge ? new TableTransactionAction(first, merged, ETag.All) : new TableTransactionAction(first, merged);
            }
            else
            {
                return false;
            }

            Waiters.AddRange(later.Waiters);
            return true;
        }

        public void Succeed(Response response)
        {
            foreach (var waiter in Waiters)
            {
                waiter.TrySetResult(response);
            }
        }

        public void Fail(Exception error)
        {
            foreach (var waiter in Waiters)
            {
                waiter.TrySetException(error);
            }
        }
    }
}
