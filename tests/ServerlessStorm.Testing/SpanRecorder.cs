using System.Collections.Concurrent;
using System.Diagnostics;
using ServerlessStorm.Engine.Diagnostics;

namespace ServerlessStorm.Testing;

/// <summary>Records every finished span of the engine's activity source while it lives (tests pick theirs by trace id).</summary>
public sealed class SpanRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<Activity> _spans = new();

    public SpanRecorder()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == StormTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _spans.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IReadOnlyList<Activity> All => [.. _spans];

    public IReadOnlyList<Activity> InTrace(ActivityTraceId trace) => [.. _spans.Where(s => s.TraceId == trace)];

    public void Dispose() => _listener.Dispose();
}
