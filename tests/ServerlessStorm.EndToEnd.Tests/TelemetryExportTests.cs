using System.Net;
using System.Text;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Testing;

namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>storm serve exports traces, metrics and logs over OTLP when the standard variables say where, and only then.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class TelemetryExportTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task WithAnOtlpEndpoint_OneWebhooksSpansAndTheMetricsReachTheCollector()
    {
        using var collector = new OtlpCollector();
        var journal = Path.Combine(Path.GetTempPath(), "storm-e2e-otlp-" + Guid.NewGuid().ToString("N")[..8]);
        var environment = new Dictionary<string, string>
        {
            ["Storage__Prefix"] = azurite.NewStorageOptions().Prefix,
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Url,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
            ["OTEL_BLRP_SCHEDULE_DELAY"] = "100",
        };
        try
        {
            await using var storm = await StormProcess.ServeAsync(environment, "--storage", azurite.ConnectionString, "--audit-journal", journal);
            using var http = StormProcess.NewHttpClient();
            using var response = await http.PostAsync(storm.Url + "/api/v1/webhooks/hello", new StringContent("""{"name":"otlp"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);

            // Protobuf keeps names as UTF-8 text: the spans of every hop, the metrics, and the service's name.
            await Eventually.TrueAsync(() => collector.Received("/v1/traces", StormTracing.ExecutionRun) && collector.Received("/v1/traces", StormTracing.WebhookAccept),
                TimeSpan.FromSeconds(30), "the webhook's spans at the collector");
            await Eventually.TrueAsync(() => collector.Received("/v1/metrics", StormMetrics.ExecutionsFinishedName), TimeSpan.FromSeconds(30), "the metrics at the collector");
            Assert.True(collector.Received("/v1/traces", "storm-serve"));
            Assert.True(collector.Received("/v1/traces", StormTracing.RulesEvaluate));
            Assert.True(collector.Received("/v1/logs", "ServerlessStorm") || collector.Paths.Contains("/v1/logs"));
        }
        finally
        {
            if (Directory.Exists(journal))
            {
                Directory.Delete(journal, recursive: true);
            }
        }
    }
}
