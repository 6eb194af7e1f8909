using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Durable.Tests;

/// <summary>
/// A workflow's secret input travels through the task hub (its history, its queues, its instance table) sealed: the
/// task that uses it sees the value, and nothing in storage or the logs holds it in the clear.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class WorkflowSecretTests(AzuriteFixture azurite)
{
    private const string Canary = "CANARY-wf-5c1d02";

    [Fact]
    public async Task WorkflowExpressions_ReadTheDatastore_AsSt2kvAndSt2kvFunction_AndASecretOpensOnlyInItsTask()
    {
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/kv.yaml", "name: kv\nrunner_type: orquesta\nentry_point: workflows/kv.yaml\n");
        packs.Write("wf/actions/workflows/kv.yaml", """
            version: 1.0
            vars:
              - host: <% st2kv('system.wf_host') %>
            tasks:
              show:
                action: core.local
                input:
                  cmd: 'echo "$H $P $T"'
                  env: {H: "{{ st2kv.system.wf_host }}", P: "<% ctx(host) %>", T: "{{ st2kv.system.wf_token | decrypt_kv }}"}
                next: [{when: "<% succeeded() %>", publish: [{said: "<% result().stdout %>"}]}]
            output: [{said: "<% ctx(said) %>"}, {next: "<% int(st2kv('system.wf_count')) + 1 %>"}]
            """);
        var (host, hub) = await WorkflowHosts.StartAsync(azurite, packs.Root);
        await using var _ = host;
        await using var __ = hub;
        var datastore = host.Services.GetRequiredService<ServerlessStorm.Engine.Datastore.KeyValueService>();
        await datastore.SetAsync("system", "wf_host", "api.local", secret: false, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "wf_count", "41", secret: false, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "wf_token", Canary, secret: true, ttl: null, CancellationToken.None);

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.kv", [], null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error);
        Assert.Equal("api.local api.local ********", workflow.Result!["output"]!["said"]!.GetValue<string>());
        Assert.Equal(42, workflow.Result["output"]!["next"]!.GetValue<long>());
        Assert.DoesNotContain(Canary, workflow.Result.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Canary, string.Join("\n", host.Logs), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SecretWorkflowInput_ReachesItsTask_AndIsNowhereInStorageOrLogs()
    {
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/login.yaml", "name: login\nrunner_type: orquesta\nentry_point: workflows/login.yaml\nparameters:\n  token: {type: string, secret: true, required: true}\n");
        packs.Write("wf/actions/workflows/login.yaml", """
            version: 1.0
            input: [token]
            tasks:
              use:
                action: core.local
                input:
                  cmd: 'test "$AUTH" = "Bearer $EXPECTED" && echo "authorized with $AUTH"'
                  env: {AUTH: "Bearer <% ctx(token) %>", EXPECTED: "<% ctx(token) %>"}
                next: [{when: "<% succeeded() %>", publish: [{said: "<% result().stdout %>"}, {header: "Bearer <% ctx(token) %>"}]}]
            output: [{said: "<% ctx(said) %>"}, {header: "<% ctx(header) %>"}]
            """);
        var (host, hub) = await WorkflowHosts.StartAsync(azurite, packs.Root);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.login", new JsonObject { ["token"] = Canary }, null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error); // the task compared the value it was given
        Assert.Equal("authorized with Bearer ********", workflow.Result!["output"]!["said"]!.GetValue<string>());
        Assert.Equal("Bearer ********", workflow.Result["output"]!["header"]!.GetValue<string>());
        Assert.Empty(await LeaksAsync(host, Canary));
    }

    [Fact]
    public async Task ADatastoreSecretInAWorkflowsInput_IsOpenedOnlyByItsTask_AndIsNowhereInStorageOrLogs()
    {
        // The input parameter is not secret; the datastore value it reads is. The workflow carries the reference.
        const string KeyCanary = "CANARY-kv-wf-77e0a4";
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/call.yaml", "name: call\nrunner_type: orquesta\nentry_point: workflows/call.yaml\nparameters:\n  auth: {type: string, default: 'Bearer {{ st2kv.system.wf_token }}'}\n");
        // The task checks the value by its hash, so the canary itself is written nowhere but the datastore.
        var expected = Sha256Hex("Bearer " + KeyCanary);
        packs.Write("wf/actions/workflows/call.yaml", $$"""
            version: 1.0
            input: [auth]
            tasks:
              use:
                action: core.local
                input:
                  cmd: 'test "$(printf %s "$AUTH" | sha256sum | cut -d" " -f1)" = "{{expected}}" && echo "sent $AUTH"'
                  env: {AUTH: "<% ctx(auth) %>"}
                next: [{when: "<% succeeded() %>", publish: [{said: "<% result().stdout %>"}]}]
            output: [{said: "<% ctx(said) %>"}]
            """);
        var (host, hub) = await WorkflowHosts.StartAsync(azurite, packs.Root);
        await using var _ = host;
        await using var __ = hub;
        await host.Services.GetRequiredService<ServerlessStorm.Engine.Datastore.KeyValueService>().SetAsync("system", "wf_token", KeyCanary, secret: true, ttl: null, CancellationToken.None);

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.call", [], null, TestCallers.Admin.User, CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error); // the task got the real value
        Assert.Equal("sent Bearer ********", workflow.Result!["output"]!["said"]!.GetValue<string>());
        Assert.Empty(await LeaksAsync(host, KeyCanary));
    }

    [Fact]
    public async Task ASecretInquiryAnswer_ReachesTheNextTask_AndIsNowhereInStorageOrLogs()
    {
        // A second factor asked of a person: the schema marks it secret, as StackStorm's inquiries do.
        const string Code = "CANARY-2fa-9d41b7";
        var expected = Sha256Hex(Code);
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/second_factor.yaml", "name: second_factor\nrunner_type: orquesta\nentry_point: workflows/second_factor.yaml\n");
        packs.Write("wf/actions/workflows/second_factor.yaml", $$"""
            version: 1.0
            tasks:
              approve:
                action: core.ask
                input:
                  schema: {type: object, properties: {code: {type: string, secret: true, required: true}, who: {type: string} } }
                next: [{when: "<% succeeded() %>", publish: [{code: "<% result().response.code %>"}, {who: "<% result().response.who %>"}], do: use}]
              use:
                action: core.local
                input:
                  cmd: 'test "$(printf %s "$CODE" | sha256sum | cut -d" " -f1)" = "{{expected}}" && echo "logged in with $CODE"'
                  env: {CODE: "<% ctx(code) %>"}
                next: [{when: "<% succeeded() %>", publish: [{said: "<% result().stdout %>"}]}]
            output: [{said: "<% ctx(said) %>"}, {code: "<% ctx(code) %>"}, {who: "<% ctx(who) %>"}]
            """);
        var (host, hub) = await WorkflowHosts.StartAsync(azurite, packs.Root);
        await using var _ = host;
        await using var __ = hub;

        var started = await host.Services.GetRequiredService<ExecutionService>().RunAsync("wf.second_factor", [], null, TestCallers.Admin.User, CancellationToken.None);
        var question = await PendingApprovalAsync(host, started);
        var answered = await host.Services.GetRequiredService<InquiryService>().RespondAsync(question.Id,
            new JsonObject { ["code"] = Code, ["who"] = "alice" }, "st2admin", CancellationToken.None);
        var workflow = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));

        Assert.True(workflow.Status == ExecutionStatus.Succeeded, workflow.Error); // the task compared the value it was given
        Assert.Equal("logged in with ********", workflow.Result!["output"]!["said"]!.GetValue<string>());
        Assert.Equal("********", workflow.Result["output"]!["code"]!.GetValue<string>());
        Assert.Equal("alice", workflow.Result["output"]!["who"]!.GetValue<string>()); // only the secret field is hidden
        Assert.Equal("********", answered.Result!["response"]!["code"]!.GetValue<string>());
        Assert.Empty(await LeaksAsync(host, Code));
    }

    [Fact]
    public async Task ARerunFromTheTaskAfterASecretInquiry_GivesThatTaskTheAnswer_NotItsMask()
    {
        const string Code = "CANARY-2fa-rerun-31c8";
        var expected = Sha256Hex(Code);
        var ready = Path.Combine(Path.GetTempPath(), $"storm-ready-{Guid.NewGuid():N}");
        using var packs = new TempPacks().WithPack("wf");
        packs.Write("wf/actions/second_factor.yaml", "name: second_factor\nrunner_type: orquesta\nentry_point: workflows/second_factor.yaml\n");
        packs.Write("wf/actions/workflows/second_factor.yaml", $$"""
            version: 1.0
            tasks:
              approve:
                action: core.ask
                input:
                  schema: {type: object, properties: {code: {type: string, secret: true, required: true} } }
                next: [{when: "<% succeeded() %>", publish: [{code: "<% result().response.code %>"}], do: use}]
              use:
                action: core.local
                input:
                  cmd: 'test -e "{{ready}}" && test "$(printf %s "$CODE" | sha256sum | cut -d" " -f1)" = "{{expected}}" && echo "logged in with $CODE"'
                  env: {CODE: "<% ctx(code) %>"}
            """);
        var (host, hub) = await WorkflowHosts.StartAsync(azurite, packs.Root);
        await using var _ = host;
        await using var __ = hub;
        var service = host.Services.GetRequiredService<ExecutionService>();

        var started = await service.RunAsync("wf.second_factor", [], null, TestCallers.Admin.User, CancellationToken.None);
        var question = await PendingApprovalAsync(host, started);
        await host.Services.GetRequiredService<InquiryService>().RespondAsync(question.Id, new JsonObject { ["code"] = Code }, "st2admin", CancellationToken.None);
        var first = await host.WaitForExecutionAsync(started.Id, TimeSpan.FromSeconds(90));
        await File.WriteAllTextAsync(ready, "");
        var reRun = await host.WaitForExecutionAsync((await service.ReRunAsync(first.Id, [], TestCallers.Admin.User, CancellationToken.None, ["use"])).Id, TimeSpan.FromSeconds(90));
        File.Delete(ready);

        Assert.Equal(ExecutionStatus.Failed, first.Status); // not ready yet
        Assert.True(reRun.Status == ExecutionStatus.Succeeded, reRun.Error); // the reused answer is the real one
        var used = (await host.Audit.GetTraceAsync(reRun.TraceTag, CancellationToken.None)).Executions.Single(e => e.ParentId == reRun.Id && e.WorkflowTask == "use");
        Assert.Equal("logged in with ********", used.Result!["stdout"]!.GetValue<string>());
        Assert.Empty(await LeaksAsync(host, Code));
    }

    private static string Sha256Hex(string text) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));

    private static async Task<ExecutionRecord> PendingApprovalAsync(StormTestHost host, ExecutionRecord workflow) =>
        (await Eventually.ReturnsAsync(async () => (await host.Audit.GetTraceAsync(workflow.TraceTag, CancellationToken.None)).Executions
            .SingleOrDefault(e => e.WorkflowTask == "approve" && e.Status == ExecutionStatus.Pending), e => e is not null, TimeSpan.FromSeconds(60)))!;

    // Where the text is in the clear: every table, blob and queue message of the account, and the host's logs.
    private async Task<List<string>> LeaksAsync(StormTestHost host, string text)
    {
        var (hits, _) = await StorageScan.FindAsync(azurite.ConnectionString, text);
        hits.AddRange(host.Logs.Where(l => l.Contains(text, StringComparison.Ordinal)).Select(l => "log: " + l));
        return hits;
    }
}
