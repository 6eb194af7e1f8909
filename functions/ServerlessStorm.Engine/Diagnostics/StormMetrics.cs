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

    public static void ExecutionFinished(string actionRef, string status) =>
        ExecutionsFinished.Add(1, new KeyValuePair<string, object?>("action", actionRef), new KeyValuePair<string, object?>("status", status));
}
