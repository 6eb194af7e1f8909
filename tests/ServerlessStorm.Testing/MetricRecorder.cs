using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ServerlessStorm.Engine.Diagnostics;

namespace ServerlessStorm.Testing;

/// <summary>Records every measurement of the engine's meter while it lives (tests pick theirs by tag).</summary>
public sealed class MetricRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Name, double Value, Dictionary<string, object?> Tags)> _measurements = new();

    public MetricRecorder()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == StormMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => _measurements.Enqueue((i.Name, v, new Dictionary<string, object?>(tags.ToArray()))));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => _measurements.Enqueue((i.Name, v, new Dictionary<string, object?>(tags.ToArray()))));
        _listener.Start();
    }

    /// <summary>The measurements of instrument <paramref name="name"/> whose tag <paramref name="tag"/> is <paramref name="value"/>.</summary>
    public IReadOnlyList<(double Value, Dictionary<string, object?> Tags)> Named(string name, string tag, string value) =>
        [.. _measurements.Where(m => m.Name == name && Equals(m.Tags.GetValueOrDefault(tag), value)).Select(m => (m.Value, m.Tags))];

    public void Dispose() => _listener.Dispose();
}
