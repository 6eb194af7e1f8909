using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Datastore;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>
/// Runs scenarios that handle a canary secret — a secret parameter echoed by the action, a datastore secret used in a
/// default, a failure whose error carries it, a result large enough for Blob Storage, live output that prints it in
/// pieces, an HTTP service that echoes it back, a parameter that fails validation — through the stack on Azurite
/// (Table audit, Storage Queue bus, Table datastore, Table live output), then scans every table, blob and queue
/// message and the logs.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class SecretCanaryTests(AzuriteFixture azurite)
{
    private const string Canary = "CANARY-7f3a9e51";

    [Fact]
    public async Task CanarySecret_IsNowhereInStorageOrLogs()
    {
        using var packs = new TempPacks().WithPack("canary");
        packs.Write("canary/actions/echo_secret.yaml", """
            name: echo_secret
            runner_type: local-shell-cmd
            parameters:
              token: {type: string, secret: true, required: true}
              cmd: {default: 'echo "token={{ token }}"', immutable: true}
            """);
        packs.Write("canary/actions/from_datastore.yaml", """
            name: from_datastore
            runner_type: local-shell-cmd
            parameters:
              header: {type: string, default: "Bearer {{ st2kv.system.canary_token }}"}
              cmd: {default: 'echo "{{ header }}"; echo "{{ header }}" >&2; exit 3', immutable: true}
            """);
        packs.Write("canary/actions/big.yaml", """
            name: big
            runner_type: local-shell-cmd
            parameters:
              token: {type: string, secret: true, required: true}
              cmd: {default: 'for i in $(seq 1 3000); do echo "line $i {{ token }}"; done', immutable: true}
            """);
        packs.Write("canary/actions/split.yaml", """
            name: split
            runner_type: local-shell-cmd
            parameters:
              token: {type: string, secret: true, required: true}
              cmd: {default: 't="{{ token }}"; printf %s "$t" | head -c 8; sleep 0.5; printf %s "$t" | tail -c +9; echo', immutable: true}
            """);
        packs.Write("canary/actions/call.yaml", """
            name: call
            runner_type: http-request
            parameters:
              username: {default: canary}
            """);
        packs.Write("canary/actions/pin.yaml", """
            name: pin
            runner_type: noop
            parameters:
              pin: {type: integer, secret: true}
            """);
        packs.Write("canary/rules/on_webhook.yaml", """
            name: on_webhook
            trigger: {type: core.st2.webhook, parameters: {url: canary}}
            action: {ref: canary.from_datastore}
            """);
        var storage = azurite.NewStorageOptions();
        var options = Options.Create(storage);
        var audit = new TableAuditStore(options, TimeProvider.System);
        var bus = new StorageQueueMessageBus(options, Options.Create(new BusOptions()), Options.Create(new StorageQueueOptions()), NullLogger<StorageQueueMessageBus>.Instance);
        var output = new TableExecutionOutputStore(options);
        await using var host = await StormTestHost.StartAsync(audit, bus, packs.Root, services => services
            .AddSingleton<IKeyValueStore>(new TableKeyValueStore(options))
            .AddSingleton<IExecutionOutputStore>(output)
            .Configure<StormOptions>(o => o.AllowedNetworks.Add("127.0.0.0/8")));
        using var echo = new BasicAuthEchoServer();
        var executions = host.Services.GetRequiredService<ExecutionService>();
        await host.Services.GetRequiredService<KeyValueService>().SetAsync("system", "canary_token", Canary, secret: true, ttl: null, CancellationToken.None);

        var echoed = await executions.RunAsync("canary.echo_secret", new JsonObject { ["token"] = Canary }, null, TestCallers.Admin.User, CancellationToken.None);
        var big = await executions.RunAsync("canary.big", new JsonObject { ["token"] = Canary }, null, TestCallers.Admin.User, CancellationToken.None);
        var split = await executions.RunAsync("canary.split", new JsonObject { ["token"] = Canary }, null, TestCallers.Admin.User, CancellationToken.None);
        var call = await executions.RunAsync("canary.call", new JsonObject { ["url"] = echo.Url, ["password"] = Canary }, null, TestCallers.Admin.User, CancellationToken.None);
        var invalid = await Assert.ThrowsAsync<ParameterValidationException>(() => executions.RunAsync("canary.pin", new JsonObject { ["pin"] = Canary }, null, TestCallers.Admin.User, CancellationToken.None));
        var webhook = await host.Api.PostWebhookAsync("canary", [], Encoding.UTF8.GetBytes("{}"), TestCallers.Admin, CancellationToken.None);
        var finished = new[]
        {
            await host.WaitForExecutionAsync(echoed.Id),
            await host.WaitForExecutionAsync(big.Id),
            (await Eventually.ReturnsAsync(() => audit.GetTraceAsync(webhook.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
                t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status))).Executions[0],
        };

        // The scenarios really handled the secret: the actions saw it and printed it, masked.
        Assert.Equal("token=********", finished[0].Result!["stdout"]!.GetValue<string>());
        Assert.Contains("line 3000 ********", finished[1].Result!["stdout"]!.GetValue<string>());
        Assert.Equal(ExecutionStatus.Failed, finished[2].Status);
        Assert.Equal("Bearer ********", finished[2].Result!["stderr"]!.GetValue<string>());
        Assert.Equal("********", (await host.WaitForExecutionAsync(split.Id)).Result!["stdout"]!.GetValue<string>());
        // The action printed the secret in two pieces, half a second apart: live output masks it whole.
        var live = await output.ReadAsync(split.Id, 0, CancellationToken.None);
        Assert.Equal("********", string.Concat(live.Select(c => c.Text)).TrimEnd('\n'));
        var called = await host.WaitForExecutionAsync(call.Id);
        Assert.Equal(ExecutionStatus.Succeeded, called.Status);
        Assert.Equal("you sent canary:********", called.Result!["body"]!.GetValue<string>());
        Assert.Contains("'pin' must be an integer", invalid.Message);
        Assert.DoesNotContain(Canary, invalid.Message);

        var (hits, blobCount) = await StorageScan.FindAsync(storage.ConnectionString, Canary);
        hits.AddRange((await StorageScan.FindAsync(storage.ConnectionString, Canary[..8])).Hits.Select(h => "first half: " + h));
        hits.AddRange(host.Logs.Where(l => l.Contains(Canary, StringComparison.Ordinal)).Select(l => "log: " + l));
        Assert.True(blobCount > 0, "the big result should have been claim-checked into Blob Storage");
        Assert.Empty(hits);
    }

    /// <summary>
    /// The leaks found by trying it as a user would: the strings inside a secret object, a secret printed JSON-escaped
    /// or URL-encoded (and a later step that parses it), a datastore secret another execution prints from a file,
    /// and a secret too short to search for.
    /// </summary>
    [Fact]
    public async Task SecretsInObjects_EscapedForms_OtherExecutions_AndShortSecrets_AreHandled()
    {
        const string Tricky = "CANARY\\q✓-4b1d";    // a backslash and a non-ASCII letter: JSON escapes both
        const string Nested = "CANARY-pass-9c2e";
        const string Stored = "CANARY-file-5a7b";
        var file = Path.Combine(Path.GetTempPath(), $"storm-canary-{Guid.NewGuid():N}");
        using var packs = new TempPacks().WithPack("canary");
        packs.Write("canary/actions/creds.yaml", """
            name: creds
            runner_type: local-shell-cmd
            parameters:
              creds: {type: object, secret: true, required: true}
              cmd: {default: 'echo "user={{ creds.user }} pass={{ creds.pass }} keys={{ creds.keys[1] }}"', immutable: true}
            """);
        packs.Write("canary/actions/escaped.yaml", """
            name: escaped
            runner_type: local-shell-cmd
            parameters:
              token: {type: string, secret: true, required: true}
              cmd:
                immutable: true
                default: >-
                  python3 -c 'import json,sys,urllib.parse; print(json.dumps(dict(t=sys.argv[1]))); print(urllib.parse.quote(sys.argv[1]))' "{{ token }}"
            """);
        packs.Write("canary/actions/to_file.yaml", $$$"""
            name: to_file
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'echo "{{ st2kv.system.stored_secret }}" > {{{file}}}', immutable: true}
            """);
        packs.Write("canary/actions/from_file.yaml", $$"""
            name: from_file
            runner_type: local-shell-cmd
            parameters:
              cmd: {default: 'cat {{file}}', immutable: true}
            """);
        packs.Write("canary/actions/short.yaml", """
            name: short
            runner_type: local-shell-cmd
            parameters:
              code: {type: string, secret: true}
              cmd: {default: 'echo "a tattoo, and the code {{ code }}"', immutable: true}
            """);
        packs.Write("canary/rules/on_escaped.yaml", """
            name: on_escaped
            trigger: {type: core.st2.generic.actiontrigger}
            criteria: {trigger.action_ref: {type: equals, pattern: canary.escaped}}
            action: {ref: core.echo, parameters: {message: "saw {{ trigger.result.stdout }}"}}
            """);
        var storage = azurite.NewStorageOptions();
        var options = Options.Create(storage);
        var audit = new TableAuditStore(options, TimeProvider.System);
        var output = new TableExecutionOutputStore(options);
        await using var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root, services => services
            .AddSingleton<IKeyValueStore>(new TableKeyValueStore(options))
            .AddSingleton<IExecutionOutputStore>(output));
        var executions = host.Services.GetRequiredService<ExecutionService>();
        var datastore = host.Services.GetRequiredService<KeyValueService>();
        await datastore.SetAsync("system", "stored_secret", Stored, secret: true, ttl: null, CancellationToken.None);
        var tooShort = await Assert.ThrowsAsync<KeyValueException>(() => datastore.SetAsync("system", "pin", "t", secret: true, ttl: null, CancellationToken.None));

        var creds = await host.WaitForExecutionAsync((await executions.RunAsync("canary.creds",
            new JsonObject { ["creds"] = new JsonObject { ["user"] = "ops", ["pass"] = Nested, ["keys"] = new JsonArray("k-one-1111", Nested + "-k2") } }, null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var escaped = await host.WaitForExecutionAsync((await executions.RunAsync("canary.escaped", new JsonObject { ["token"] = Tricky }, null, TestCallers.Admin.User, CancellationToken.None)).Id);
        await host.WaitForExecutionAsync((await executions.RunAsync("canary.to_file", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var fromFile = await host.WaitForExecutionAsync((await executions.RunAsync("canary.from_file", [], null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var shortRun = await host.WaitForExecutionAsync((await executions.RunAsync("canary.short", new JsonObject { ["code"] = "t" }, null, TestCallers.Admin.User, CancellationToken.None)).Id);
        var sawIt = await Eventually.ReturnsAsync(async () => (await audit.QueryExecutionsAsync(new Engine.Audit.AuditQuery(null, null, null, 50), CancellationToken.None))
            .FirstOrDefault(e => e.ActionRef == "core.echo" && ExecutionStatus.IsTerminal(e.Status)), e => e is not null, what: "the rule on the escaped output");
        File.Delete(file);

        Assert.Contains("at least 4 characters", tooShort.Message);
        Assert.Equal("user=ops pass=******** keys=********", creds.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("{\"t\": \"********\"}\n********", escaped.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("saw {\"t\": \"********\"}\n********", sawIt!.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("********", fromFile.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("a tattoo, and the code t", shortRun.Result!["stdout"]!.GetValue<string>()); // not corrupted: too short to search for
        Assert.Equal("********", shortRun.Parameters["code"]!.GetValue<string>());
        Assert.Contains(host.Logs, l => l.Contains("secret parameter(s) code have a value shorter than 4 characters", StringComparison.Ordinal));

        var forms = Engine.Audit.SecretMasker.Expand([Tricky, Nested, Stored]);
        var hits = new List<string>();
        foreach (var form in forms)
        {
            hits.AddRange((await StorageScan.FindAsync(storage.ConnectionString, form)).Hits.Select(h => $"{form}: {h}"));
            hits.AddRange(host.Logs.Where(l => l.Contains(form, StringComparison.Ordinal)).Select(l => $"{form} in log: {l}"));
        }

        Assert.Empty(hits);
    }
}
