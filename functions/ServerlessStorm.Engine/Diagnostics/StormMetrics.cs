using System.Diagnostics.Metrics;

namespace ServerlessStorm.Engine.Diagnostics;

/// <summary>
/// The engine's metrics (meter <c>ServerlessStorm</c>), for OpenTelemetry / Application Insights and for harnesses
/// that watch a running stack without reading the audit.
/// </summary>
public static class StormMetrics
{
    public const string MeterName = "ServerlessStorm";

    public const string ExecutionsFinishedName = "storm.executions.finished";

    private static readonly Meter Meter = new(MeterName);

    /// <summary>Executions that reached a final status, tagged <c>action</c> and <c>status</c>.</summary>
    public static readonly Counter<long> ExecutionsFinished = Meter.CreateCounter<long>(ExecutionsFinishedName, description: "Executions that reached a final status");

    public const string JournalAppendName = "storm.audit.journal.append.duration";

    /// <summary>
    /// How long appending one write to the written-behind audit's journal took (µs), tagged <c>kind</c>: the journal's
    /// share of the pipeline's path.
    /// </summary>
    public static readonly Histogram<double> JournalAppend = Meter.CreateHistogram<double>(JournalAppendName, unit: "us", description: "Time to append one audit write to the journal");

    public static void ExecutionFinished(string actionRef, string status) =>
        ExecutionsFinished.Add(1, new KeyValuePair<string, object?>("action", actionRef), new KeyValuePair<string, object?>("status", status));
}
