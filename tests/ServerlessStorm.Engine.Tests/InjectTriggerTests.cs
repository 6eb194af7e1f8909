using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>core.inject_trigger dispatches a pack's trigger type as StackStorm's action does, with the generic webhook's checks.</summary>
public sealed class InjectTriggerTests
{
    private static TempPacks Packs()
    {
        var packs = new TempPacks().WithPack("deploys");
        packs.Write("deploys/triggers/finished.yaml", """
            name: finished
            pack: deploys
            payload_schema:
              type: object
              properties:
                service: {type: string}
              required: [service]
            """);
        packs.Write("deploys/actions/say.yaml", "name: say\nrunner_type: local-shell-cmd\nparameters:\n  service: {type: string}\n  cmd: {default: 'echo deployed {{ service }}'}\n");
        packs.Write("deploys/rules/on_finished.yaml", """
            name: on_finished
            pack: deploys
            trigger: {type: deploys.finished}
            action: {ref: deploys.say, parameters: {service: "{{ trigger.service }}"}}
            """);
        return packs.WithRepositoryCore();
    }

    private static async Task<ExecutionRecord> RunAsync(StormTestHost host, InMemoryAuditStore audit, string parameters)
    {
        var response = await host.Api.PostExecutionAsync(JsonNode.Parse($$"""{"action": "core.inject_trigger", "parameters": {{parameters}}}"""), "inject-test", TestCallers.Admin, CancellationToken.None);
        var id = response.Body!["id"]!.GetValue<string>();
        return await Eventually.ReturnsAsync(() => audit.GetExecutionAsync(id, CancellationToken.None), e => e is not null && ExecutionStatus.IsTerminal(e.Status)) ?? throw new InvalidOperationException();
    }

    [Fact]
    public async Task InjectTrigger_FiresTheRulesOnTheType_WithItsPayload()
    {
        using var packs = Packs();
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var injected = await RunAsync(host, audit, """{"trigger_name": "deploys.finished", "payload": {"service": "billing"}, "trace_tag": "deploy-42"}""");

        Assert.Equal(ExecutionStatus.Succeeded, injected.Status);
        Assert.Equal("deploys.finished", injected.Result!["trigger"]!.GetValue<string>());
        Assert.Equal("billing", injected.Result["payload"]!["service"]!.GetValue<string>());
        Assert.NotNull(injected.Result["trigger_instance_id"]);
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync("deploy-42", CancellationToken.None),
            t => t.Executions.Any(e => e.ActionRef == "deploys.say" && ExecutionStatus.IsTerminal(e.Status)));
        Assert.Equal("deployed billing", trace.Executions.Single(e => e.ActionRef == "deploys.say").Result!["stdout"]!.GetValue<string>());
        Assert.Equal(injected.User, Assert.Single(trace.TriggerInstances).User);
        Assert.NotNull(injected.User);
    }

    [Theory]
    [InlineData("""{"trigger_name": "deploys.finished", "payload": {"service": 7}}""", "payload_schema")]
    [InlineData("""{"trigger_name": "deploys.nope"}""", "trigger type 'deploys.nope' does not exist")]
    [InlineData("""{"trigger_name": "core.st2.webhook", "payload": {}}""", "is the platform's own")]
    [InlineData("""{"trigger": "deploys.finished", "trigger_name": "deploys.finished"}""", "mutually exclusive")]
    [InlineData("""{"payload": {}}""", "trigger_name")]
    public async Task InjectTrigger_Refused_FailsSayingWhy(string parameters, string reason)
    {
        using var packs = Packs();
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var injected = await RunAsync(host, audit, parameters);

        Assert.Equal(ExecutionStatus.Failed, injected.Status);
        Assert.Contains(reason, injected.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InjectTrigger_TheOlderTriggerParameter_StillWorks()
    {
        using var packs = Packs();
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root);

        var injected = await RunAsync(host, audit, """{"trigger": "deploys.finished", "payload": {"service": "auth"}}""");

        Assert.Equal(ExecutionStatus.Succeeded, injected.Status);
        Assert.Equal("inject-test", injected.Result!["trace_tag"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheExecutionsUser_NeedsWebhookSend_AsStackStormsPostToTheWebhookDoes()
    {
        using var packs = Packs();
        const string Inject = "name: injector\npermission_grants:\n  - resource_uid: action:core:inject_trigger\n    permission_types: [action_execute]\n";
        await using var rbac = await RbacHost.StartAsync(new Dictionary<string, string>
        {
            ["roles/injector.yaml"] = Inject,
            ["roles/sender.yaml"] = "name: sender\npermission_grants:\n  - resource_uid: webhook:st2\n    permission_types: [webhook_send]\n",
            ["assignments/bob.yaml"] = "username: bob\nroles: [injector]\n",
            ["assignments/ann.yaml"] = "username: ann\nroles: [injector, sender]\n",
        }, packs.Root);
        const string Body = """{"action": "core.inject_trigger", "parameters": {"trigger": "deploys.finished", "payload": {"service": "api"}}}""";

        var bobs = await rbac.AsAsync("bob", "POST", "/api/v1/executions", Body);
        var anns = await rbac.AsAsync("ann", "POST", "/api/v1/executions", Body);
        var bob = await rbac.Host.WaitForExecutionAsync(bobs.Body!["id"]!.GetValue<string>());
        var ann = await rbac.Host.WaitForExecutionAsync(anns.Body!["id"]!.GetValue<string>());

        Assert.Equal(ExecutionStatus.Failed, bob.Status);
        Assert.Contains("User \"bob\" doesn't have required permission \"webhook_send\" on resource \"webhook:st2\"", bob.Error, StringComparison.Ordinal);
        Assert.True(ann.Status == ExecutionStatus.Succeeded, ann.Error);
    }
}
