using System.Text;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>
/// StackStorm's generic webhook (<c>/webhooks/st2</c>) dispatches any trigger type, such as one a pack's sensor
/// metadata declares, after checking the payload against the type's payload_schema.
/// </summary>
public sealed class GenericWebhookTests
{
    private static TempPacks SensorPack()
    {
        var packs = new TempPacks().WithPack("watch");
        packs.Write("watch/sensors/file_watch_sensor.yaml", """
            class_name: FileWatchSensor
            entry_point: file_watch_sensor.py
            trigger_types:
              - name: file_watch.line
                payload_schema:
                  type: object
                  properties:
                    file_path: {type: string}
                    line: {type: string}
                  required: [line]
            """);
        packs.Write("watch/sensors/file_watch_sensor.py", "class FileWatchSensor(object):\n    pass\n");
        packs.Write("watch/actions/say.yaml", "name: say\nrunner_type: local-shell-cmd\nparameters:\n  line: {type: string}\n  cmd: {default: 'echo got {{ line }}'}\n");
        packs.Write("watch/rules/on_line.yaml", """
            name: on_line
            pack: watch
            trigger: {type: watch.file_watch.line}
            action: {ref: watch.say, parameters: {line: "{{ trigger.line }}"}}
            """);
        // StackStorm's type ref reaches only the rules without trigger parameters (a sensor's own trigger has them).
        packs.Write("watch/rules/on_syslog.yaml", """
            name: on_syslog
            pack: watch
            trigger: {type: watch.file_watch.line, parameters: {file_path: /var/log/syslog}}
            action: {ref: watch.say, parameters: {line: "syslog {{ trigger.line }}"}}
            """);
        return packs.WithRepositoryCore();
    }

    [Fact]
    public async Task ASensorsTriggerType_SentToTheSt2Webhook_FiresItsRule_AndABadPayloadIsRefusedSayingWhy()
    {
        using var packs = SensorPack();
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);
        Task<Api.ApiResponse> Send(string body) =>
            host.Api.PostWebhookAsync("st2", [], Encoding.UTF8.GetBytes(body), TestCallers.Admin, CancellationToken.None);

        var accepted = await Send("""{"trigger": "watch.file_watch.line", "payload": {"file_path": "/var/log/syslog", "line": "disk full"}, "trace_tag": "line-1"}""");
        var badPayload = await Send("""{"trigger": "watch.file_watch.line", "payload": {"line": 7}}""");
        var unknown = await Send("""{"trigger": "watch.nope", "payload": {}}""");
        var noTrigger = await Send("""{"payload": {}}""");
        var system = await Send("""{"trigger": "core.st2.webhook", "payload": {"headers": {}, "body": {"name": "x"}}}""");

        Assert.Equal(202, accepted.StatusCode);
        Assert.Equal("line-1", accepted.Body!["trace_tag"]!.GetValue<string>());
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync("line-1", CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));
        Assert.Equal("got disk full", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
        Assert.Equal("watch.on_line", Assert.Single(trace.RuleEnforcements).RuleRef);

        Assert.Equal(400, badPayload.StatusCode);
        Assert.Contains("payload_schema", badPayload.Body!["faultstring"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("line", badPayload.Body!["faultstring"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(400, unknown.StatusCode);
        Assert.Contains("trigger type 'watch.nope' does not exist", unknown.Body!["faultstring"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(400, noTrigger.StatusCode);
        Assert.Equal(400, system.StatusCode);
        Assert.Contains("is the platform's own and cannot be sent", system.Body!["faultstring"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
