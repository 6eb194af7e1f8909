using System.Collections.Concurrent;
using System.Threading.Channels;

namespace ServerlessStorm.Engine.Executions;

/// <summary>A piece of an execution's live output: its sequence number, the stream (stdout or stderr) and the text.</summary>
public sealed record OutputChunk(long Sequence, string Stream, string Text);

/// <summary>Where running executions' output goes as it is produced, for <c>storm execution tail</c>.</summary>
public interface IExecutionOutputStore
{
    Task AppendAsync(string executionId, IReadOnlyList<OutputChunk> chunks, CancellationToken cancellationToken);

    /// <summary>The chunks with a sequence number of at least <paramref name="fromSequence"/>, in order.</summary>
    Task<IReadOnlyList<OutputChunk>> ReadAsync(string executionId, long fromSequence, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes the output of the executions created on <paramref name="day"/> (UTC) but those in <paramref name="kept"/>;
    /// the rows deleted, or null when the day's output went whole without being counted.
    /// </summary>
    Task<int?> PurgeDayAsync(DateOnly day, IReadOnlySet<string> kept, CancellationToken cancellationToken);
}

public sealed class InMemoryExecutionOutputStore : IExecutionOutputStore
{
    private readonly ConcurrentDictionary<string, List<OutputChunk>> _output = new(StringComparer.Ordinal);

    public Task AppendAsync(string executionId, IReadOnlyList<OutputChunk> chunks, CancellationToken cancellationToken)
    {
        var list = _output.GetOrAdd(executionId, _ => []);
        lock (list)
        {
            list.AddRange(chunks);
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<OutputChunk>> ReadAsync(string executionId, long fromSequence, CancellationToken cancellationToken)
    {
        if (!_output.TryGetValue(executionId, out var list))
        {
            return Task.FromResult<IReadOnlyList<OutputChunk>>([]);
        }

        lock (list)
        {
            return Task.FromResult<IReadOnlyList<OutputChunk>>([.. list.Where(c => c.Sequence >= fromSequence)]);
        }
    }

    public Task<int?> PurgeDayAsync(DateOnly day, IReadOnlySet<string> kept, CancellationToken cancellationToken)
    {
        var deleted = 0;
        foreach (var id in _output.Keys)
        {
            if (!kept.Contains(id) && Audit.AuditRetention.DayOfExecution(id) == day && _output.TryRemove(id, out var chunks))
            {
                lock (chunks)
                {
                    deleted += chunks.Count;
                }
            }
        }

        return Task.FromResult<int?>(deleted);
    }
}

/// <summary>
/// Collects a runner's output as it comes and writes it to the <see cref="IExecutionOutputStore"/> in small batches
/// (at most every 200 ms), masking secrets on the way. Writing never slows the runner: the runner only enqueues.
/// Held until the end, it writes everything then, masked with the secrets as they are by then (the caller may add
/// to its list of secrets meanwhile).
/// </summary>
public sealed class LiveOutput : IAsyncDisposable
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(200);
    private const long MaxHeldChars = 2 * 1024 * 1024;
    private readonly Channel<(string Stream, string Text)> _pending = Channel.CreateUnbounded<(string, string)>();
    private readonly Task _writer;

    public LiveOutput(string executionId, IExecutionOutputStore store, IReadOnlyList<string> secrets, bool holdUntilEnd = false)
    {
        _writer = Task.Run(async () =>
        {
            var sequence = 0L;
            var maskers = new Dictionary<string, StreamMasker>(StringComparer.Ordinal);
            var held = new List<(string Stream, string Text)>();
            var heldChars = 0L;
            async Task AppendAsync(List<OutputChunk> batch)
            {
                try
                {
                    await store.AppendAsync(executionId, batch, CancellationToken.None);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Live output is a convenience: the full output is in the result when the execution finishes.
                }
            }

            while (await _pending.Reader.WaitToReadAsync())
            {
                var batch = new List<OutputChunk>();
                while (_pending.Reader.TryRead(out var item))
                {
                    if (holdUntilEnd)
                    {
                        // Held in memory, so bounded: past the limit, only the result keeps the output. Pieces are
                        // kept whole, and what might begin a secret at the end of the last is dropped (below).
                        if (heldChars + item.Text.Length <= MaxHeldChars)
                        {
                            held.Add(item);
                        }

                        heldChars += item.Text.Length;
                        continue;
                    }

                    var masker = maskers.TryGetValue(item.Stream, out var known) ? known : maskers[item.Stream] = new StreamMasker(secrets);
                    if (masker.Next(item.Text) is { Length: > 0 } text)
                    {
                        batch.Add(new OutputChunk(sequence++, item.Stream, text));
                    }
                }

                if (batch.Count > 0)
                {
                    await AppendAsync(batch);
                }

                // Wait before the next batch, but not past the end of the run: finishing must not wait for the timer.
                await Task.WhenAny(Task.Delay(FlushInterval), _pending.Reader.Completion);
            }

            if (held.Count > 0)
            {
                var all = new List<OutputChunk>();
                foreach (var (stream, text) in held)
                {
                    var masker = maskers.TryGetValue(stream, out var known) ? known : maskers[stream] = new StreamMasker([.. secrets]);
                    if (masker.Next(text) is { Length: > 0 } masked)
                    {
                        all.Add(new OutputChunk(sequence++, stream, masked));
                    }
                }

                if (heldChars > MaxHeldChars)
                {
                    maskers.Clear(); // their held ends may be the start of a secret the cut left out
                    all.Add(new OutputChunk(sequence++, "stderr", "\n[… live output cut by ServerlessStorm; the result keeps the output]\n"));
                }

                await AppendAsync(all);
            }

            var rest = maskers.Select(m => (Stream: m.Key, Text: m.Value.Rest())).Where(r => r.Text.Length > 0).Select(r => new OutputChunk(sequence++, r.Stream, r.Text)).ToList();
            if (rest.Count > 0)
            {
                await AppendAsync(rest);
            }
        });
    }

    public void Write(string stream, string text) => _pending.Writer.TryWrite((stream, text));

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        await _writer;
    }
}

/// <summary>
/// Masks secrets in text that arrives in pieces. The end of a piece that could be the start of a secret waits for the
/// next piece (or the end of the stream), and a whole secret is never cut in two, so a secret split between two
/// reads is still masked. Text that cannot begin a secret passes at once.
/// </summary>
public sealed class StreamMasker(IReadOnlyList<string> secrets)
{
    private readonly string[] _secrets = [.. secrets.Where(s => s.Length > 0)];
    private string _held = "";

    /// <summary>The masked text that can be passed on now, of what came before and <paramref name="text"/>.</summary>
    public string Next(string text)
    {
        if (_secrets.Length == 0)
        {
            return text;
        }

        var all = _held + text;
        var cut = SafeEnd(all);
        _held = all[cut..];
        return Audit.SecretMasker.MaskText(all[..cut], _secrets);
    }

    /// <summary>What was held back, masked: the stream has ended.</summary>
    public string Rest()
    {
        var rest = Audit.SecretMasker.MaskText(_held, _secrets);
        _held = "";
        return rest;
    }

    private int SafeEnd(string text)
    {
        var cut = text.Length;
        foreach (var secret in _secrets)
        {
            // The longest end of the text that this secret begins with.
            for (var k = Math.Min(secret.Length - 1, text.Length); k > 0; k--)
            {
                if (text.AsSpan(text.Length - k).SequenceEqual(secret.AsSpan(0, k)))
                {
                    cut = Math.Min(cut, text.Length - k);
                    break;
                }
            }
        }

        // Moving the cut back to the start of a secret it would split may split another: repeat until none is split.
        for (var moved = true; moved;)
        {
            moved = false;
            foreach (var secret in _secrets)
            {
                var from = Math.Max(0, cut - secret.Length + 1);
                var at = from < cut ? text.IndexOf(secret, from, StringComparison.Ordinal) : -1;
                if (at >= 0 && at < cut && at + secret.Length > cut)
                {
                    cut = at;
                    moved = true;
                }
            }
        }

        return cut;
    }
}
