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
}

/// <summary>
/// Collects a runner's output as it comes and writes it to the <see cref="IExecutionOutputStore"/> in small batches
/// (at most every 200 ms), masking secrets on the way. Writing never slows the runner: the runner only enqueues.
/// </summary>
public sealed class LiveOutput : IAsyncDisposable
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(200);
    private readonly Channel<(string Stream, string Text)> _pending = Channel.CreateUnbounded<(string, string)>();
    private readonly Task _writer;

    public LiveOutput(string executionId, IExecutionOutputStore store, IReadOnlyList<string> secrets)
    {
        _writer = Task.Run(async () =>
        {
            var sequence = 0L;
            while (await _pending.Reader.WaitToReadAsync())
            {
                var batch = new List<OutputChunk>();
                while (_pending.Reader.TryRead(out var item))
                {
                    batch.Add(new OutputChunk(sequence++, item.Stream, Audit.SecretMasker.MaskText(item.Text, secrets)));
                }

                try
                {
                    await store.AppendAsync(executionId, batch, CancellationToken.None);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Live output is a convenience: the full output is in the result when the execution finishes.
                }

                // Wait before the next batch, but not past the end of the run: finishing must not wait for the timer.
                await Task.WhenAny(Task.Delay(FlushInterval), _pending.Reader.Completion);
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
