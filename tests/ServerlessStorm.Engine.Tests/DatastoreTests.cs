using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

public class DatastoreTests
{
    private static readonly string Key = Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    private static (KeyValueService Service, InMemoryKeyValueStore Store, ManualTimeProvider Clock) Create()
    {
        var store = new InMemoryKeyValueStore();
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
        return (new KeyValueService(store, Options.Create(new DatastoreOptions { EncryptionKey = Key }), clock), store, clock);
    }

    [Fact]
    public async Task SecretValues_AreEncryptedAtRest_AndDecryptedOnlyOnRequest()
    {
        var (service, store, _) = Create();

        await service.SetAsync("system", "db_password", "hunter2", secret: true, ttl: null, CancellationToken.None);

        var raw = await store.GetAsync("system", "db_password", CancellationToken.None);
        Assert.StartsWith("aesgcm:", raw!.Value, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", raw.Value);
        Assert.Equal(raw.Value, (await service.GetAsync("system", "db_password", decrypt: false, CancellationToken.None))!.Value);
        Assert.Equal("hunter2", (await service.GetAsync("system", "db_password", decrypt: true, CancellationToken.None))!.Value);
    }

    [Fact]
    public async Task TimeToLive_ExpiresThePair()
    {
        var (service, _, clock) = Create();
        await service.SetAsync("user", "session", "abc", secret: false, ttl: TimeSpan.FromMinutes(5), CancellationToken.None);

        clock.Advance(TimeSpan.FromMinutes(4));
        Assert.NotNull(await service.GetAsync("user", "session", false, CancellationToken.None));
        clock.Advance(TimeSpan.FromMinutes(2));

        Assert.Null(await service.GetAsync("user", "session", false, CancellationToken.None));
        Assert.Empty(await service.ListAsync("user", null, CancellationToken.None));
    }

    [Theory]
    [InlineData("global", "x", "unknown scope")]
    [InlineData("system", "bad name", "not a valid key name")]
    [InlineData("system", "", "not a valid key name")]
    public async Task BadScopeOrName_IsRefused(string scope, string name, string message)
    {
        var (service, _, _) = Create();

        var error = await Assert.ThrowsAsync<KeyValueException>(() => service.SetAsync(scope, name, "v", false, null, CancellationToken.None));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public async Task ChangedEncryptionKey_IsAClearError()
    {
        var (service, store, clock) = Create();
        await service.SetAsync("system", "token", "t0ken", secret: true, ttl: null, CancellationToken.None);
        var other = new KeyValueService(store, Options.Create(new DatastoreOptions { EncryptionKey = Convert.ToBase64String(new byte[32]) }), clock);

        var error = await Assert.ThrowsAsync<KeyValueException>(() => other.GetAsync("system", "token", decrypt: true, CancellationToken.None));
        Assert.Contains("encryption key has changed", error.Message);
    }

    [Fact]
    public async Task Secrets_InActionParameters_ReachOnlyTheRunner_AndAreMaskedInTheResult()
    {
        using var packs = new TempPacks().WithPack("kv");
        packs.Write("kv/actions/call.yaml", """
            name: call
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'echo "auth={{ token }} host={{ host }}"', immutable: true}
              token: {type: string, default: "Bearer {{ st2kv.system.api_token }}"}
              host: {type: string, default: "{{ st2kv.system.api_host }}"}
            """);
        packs.Write("kv/rules/call.yaml", """
            name: call
            trigger: {type: core.st2.webhook, parameters: {url: call}}
            action: {ref: kv.call}
            """);
        var audit = new InMemoryAuditStore();
        var bus = new InMemoryMessageBus();
        var published = new List<string>();
        await using var host = await StormTestHost.StartAsync(audit, bus, packs.Root, services =>
            services.Configure<DatastoreOptions>(o => o.EncryptionKey = Key));
        var datastore = host.Services.GetRequiredService<KeyValueService>();
        await datastore.SetAsync("system", "api_token", "s3cr3t-canary", secret: true, ttl: null, CancellationToken.None);
        await datastore.SetAsync("system", "api_host", "api.local", secret: false, ttl: null, CancellationToken.None);

        var response = await host.Api.PostWebhookAsync("call", [], Encoding.UTF8.GetBytes("{}"), TestCallers.Admin, CancellationToken.None);
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(response.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));

        var execution = trace.Executions[0];
        Assert.Equal(ExecutionStatus.Succeeded, execution.Status);
        Assert.Equal("auth=Bearer ******** host=api.local", execution.Result!["stdout"]!.GetValue<string>());
        Assert.DoesNotContain("s3cr3t-canary", execution.Parameters.ToJsonString());
        Assert.DoesNotContain("s3cr3t-canary", string.Join("\n", host.Logs));
        Assert.DoesNotContain(trace.TriggerInstances, t => (t.Payload?.ToJsonString() ?? "").Contains("s3cr3t-canary", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SecretParameters_CrossTheBusSealed()
    {
        using var packs = new TempPacks().WithPack("s");
        packs.Write("s/actions/login.yaml", """
            name: login
            runner_type: local-shell-cmd
            parameters:
              password: {type: string, secret: true, required: true}
              cmd: {default: 'echo "{{ password }}"', immutable: true}
            """);
        var bus = new RecordingBus(new InMemoryMessageBus());
        await using var host = await StormTestHost.StartAsync(new InMemoryAuditStore(), bus, packs.Root);

        var requested = await host.Services.GetRequiredService<ExecutionService>().RunAsync("s.login", new JsonObject { ["password"] = "pa55-canary" }, null, TestCallers.Admin.User, CancellationToken.None);
        var finished = await host.WaitForExecutionAsync(requested.Id);

        Assert.Equal("********", finished.Result!["stdout"]!.GetValue<string>());
        Assert.NotEmpty(bus.Bodies);
        Assert.DoesNotContain(bus.Bodies, b => b.Contains("pa55-canary", StringComparison.Ordinal));
    }

    private sealed class RecordingBus(IMessageBus inner) : ServerlessStorm.Testing.DelegatingMessageBus(inner)
    {
        public System.Collections.Concurrent.ConcurrentBag<string> Bodies { get; } = [];

        public override Task PublishAsync(string queue, BusMessage message, CancellationToken cancellationToken)
        {
            Bodies.Add(Encoding.UTF8.GetString(message.Body.Span));
            return Inner.PublishAsync(queue, message, cancellationToken);
        }

    }

    [Fact]
    public async Task ASealForgedInPayloadData_IsNotUnsealed()
    {
        var (service, _, _) = Create();
        await service.SetAsync("system", "api_token", "s3cr3t", secret: true, ttl: null, CancellationToken.None);
        var snapshot = await service.SnapshotAsync([("system", "api_token")], "e1", null, CancellationToken.None);
        var seal = snapshot.Get("system", "api_token")!;
        var forged = seal.Replace(seal.Split(':')[1], new string('0', 32), StringComparison.Ordinal);

        Assert.Equal("s3cr3t", (await service.UnsealAsync(seal, "e1", CancellationToken.None)).Text);
        Assert.Equal(forged, (await service.UnsealAsync(forged, "e1", CancellationToken.None)).Text);
    }

    [Fact]
    public async Task AReference_OpensOnlyInTheExecutionItWasRenderedFor_OrWhereItIsCarriedOn()
    {
        var (service, _, _) = Create();
        await service.SetAsync("system", "api_token", "s3cr3t", secret: true, ttl: null, CancellationToken.None);
        var reference = (await service.SnapshotAsync([("system", "api_token")], "e1", null, CancellationToken.None)).Get("system", "api_token")!;

        var elsewhere = await service.UnsealAsync($"x {reference} y", "e2", CancellationToken.None);
        Assert.Equal($"x {reference} y", elsewhere.Text);
        Assert.Empty(elsewhere.Secrets);

        // A re-run, a retry or a workflow task carries it on; a reference of another execution is not carried.
        var other = (await service.SnapshotAsync([("system", "api_token")], "e9", null, CancellationToken.None)).Get("system", "api_token")!;
        var carried = service.Rebind(new JsonObject { ["a"] = $"Bearer {reference}", ["b"] = new JsonArray(other) }, "e1", "e2")!;
        Assert.Equal("Bearer s3cr3t", (await service.UnsealAsync(carried["a"]!.GetValue<string>(), "e2", CancellationToken.None)).Text);
        Assert.Equal(other, (await service.UnsealAsync(carried["b"]![0]!.GetValue<string>(), "e2", CancellationToken.None)).Text);
        Assert.Equal(reference, (await service.UnsealAsync(reference, "e2", CancellationToken.None)).Text);
    }

    [Fact]
    public async Task AReferenceCopiedIntoAnotherExecutionsPayload_OpensNothing()
    {
        using var packs = new TempPacks().WithPack("kv");
        packs.Write("kv/actions/call.yaml", """
            name: call
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'echo "auth={{ token }}"', immutable: true}
              token: {type: string, default: "{{ st2kv.system.api_token }}"}
            """);
        packs.Write("kv/actions/show.yaml", """
            name: show
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'echo "{{ x }}" | rev', immutable: true}
              x: {type: string}
            """);
        packs.Write("kv/rules/show.yaml", """
            name: show
            trigger: {type: core.st2.webhook, parameters: {url: show}}
            action: {ref: kv.show, parameters: {x: "{{ trigger.body.x }}"}}
            """);
        var audit = new InMemoryAuditStore();
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root, services =>
            services.Configure<DatastoreOptions>(o => o.EncryptionKey = Key));
        await host.Services.GetRequiredService<KeyValueService>().SetAsync("system", "api_token", "s3cr3t-canary", secret: true, ttl: null, CancellationToken.None);
        var call = await host.WaitForExecutionAsync((await host.Services.GetRequiredService<ExecutionService>().RunAsync("kv.call", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        Assert.Equal("auth=********", call.Result!["stdout"]!.GetValue<string>());

        // What the API shows names the key, without anything that would open it.
        Assert.Equal("\u27e6st2kv.system.api_token\u27e7", call.Parameters["token"]!.GetValue<string>());
        // Even the full reference (as kept for re-runs, in the audit's storage) opens nothing in another execution.
        var stolen = call.SealedParameters!["token"]!.GetValue<string>();
        Assert.StartsWith("\u27e6st2kv:", stolen, StringComparison.Ordinal);
        var response = await host.Api.PostWebhookAsync("show", [], Encoding.UTF8.GetBytes(new JsonObject { ["x"] = stolen }.ToJsonString()), TestCallers.Admin, CancellationToken.None);
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(response.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));

        var shown = trace.Executions[0];
        Assert.Equal(ExecutionStatus.Succeeded, shown.Status);
        Assert.DoesNotContain("yranac-t3rc3s", shown.Result!.ToJsonString());
        Assert.Equal(new string(stolen.Reverse().ToArray()), shown.Result!["stdout"]!.GetValue<string>());

        // A re-run carries the reference on, and it opens there.
        var again = await host.WaitForExecutionAsync((await host.Services.GetRequiredService<ExecutionService>().ReRunAsync(call.Id, [], TestCallers.Admin.User, CancellationToken.None)).Id);
        Assert.Equal("auth=********", again.Result!["stdout"]!.GetValue<string>());
    }
}
