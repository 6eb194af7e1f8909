using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Triggers;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

/// <summary>core.ask: an execution that waits in pending for a person's answer, checked against its schema.</summary>
public sealed class InquiryTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

    private static readonly JsonObject ApprovalSchema = JsonNode.Parse("""
        {"type": "object", "properties": {"approve": {"type": "boolean", "required": true}, "reason": {"type": "string", "maxLength": 20}}, "additionalProperties": false}
        """)!.AsObject();

    private static TempPacks PacksWithInquiryRule()
    {
        var packs = new TempPacks().WithPack("ops");
        packs.Write("ops/rules/tell_people.yaml", """
            name: tell_people
            trigger: {type: core.st2.generic.inquiry}
            action: {ref: core.echo, parameters: {message: "inquiry {{ trigger.id }} on {{ trigger.route }}"}}
            """);
        packs.Write("ops/rules/on_answer.yaml", """
            name: on_answer
            trigger: {type: core.st2.generic.actiontrigger}
            criteria: {trigger.action_ref: {type: equals, pattern: core.ask}, trigger.status: {type: equals, pattern: succeeded}}
            action: {ref: core.echo, parameters: {message: "approved={{ trigger.result.response.approve }}"}}
            """);
        return packs;
    }

    private static async Task<(StormTestHost Host, InMemoryAuditStore Audit)> StartAsync(TempPacks packs, TimeProvider? time = null)
    {
        var audit = new InMemoryAuditStore();
        var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packs.Root, services =>
        {
            if (time is not null)
            {
                services.AddSingleton(time);
            }
        });
        return (host, audit);
    }

    private static async Task<ExecutionRecord> AskAsync(StormTestHost host, JsonObject parameters)
    {
        var asked = await host.Services.GetRequiredService<ExecutionService>().RunAsync("core.ask", parameters, null, TestCallers.Admin.User, CancellationToken.None);
        return (await Eventually.ReturnsAsync(() => host.Audit.GetExecutionAsync(asked.Id, CancellationToken.None), e => e?.Status == ExecutionStatus.Pending))!;
    }

    [Fact]
    public async Task Inquiry_WaitsPending_RefusesWrongUsersAndAnswers_ThenSucceedsWithTheResponse()
    {
        using var packs = PacksWithInquiryRule();
        var (host, audit) = await StartAsync(packs);
        await using var _ = host;
        var inquiries = host.Services.GetRequiredService<InquiryService>();

        var pending = await AskAsync(host, new JsonObject { ["schema"] = ApprovalSchema.DeepClone(), ["users"] = new JsonArray("alice"), ["route"] = "ops-chat" });

        Assert.Null(pending.EndTimestamp);
        Assert.Equal(pending.Id, Assert.Single(await inquiries.ListPendingAsync(10, CancellationToken.None)).Id);
        var told = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(pending.TraceTag, CancellationToken.None),
            t => t.Executions.Any(e => e.ActionRef == "core.echo" && e.Status == ExecutionStatus.Succeeded));
        Assert.Equal($"inquiry {pending.Id} on ops-chat", told.Executions.Single(e => e.ActionRef == "core.echo").Result!["stdout"]!.GetValue<string>());

        var wrongUser = await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(pending.Id, new JsonObject { ["approve"] = true }, "mallory", CancellationToken.None));
        Assert.Equal((403, $"User \"mallory\" does not have permission to respond to inquiry \"{pending.Id}\" (it allows users: alice)"), (wrongUser.Status, wrongUser.Message));

        var badAnswer = await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(pending.Id,
            new JsonObject { ["approve"] = "yes", ["reason"] = new string('x', 30), ["extra"] = 1 }, "alice", CancellationToken.None));
        Assert.Equal(400, badAnswer.Status);
        Assert.Equal(["approve: expected boolean, got string", "reason: is longer than 20 character(s)", "extra: is not an allowed property (allowed: approve, reason)"], badAnswer.Problems);
        var missing = await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(pending.Id, new JsonObject(), "alice", CancellationToken.None));
        Assert.Equal(["approve: is required"], missing.Problems);
        Assert.Equal(ExecutionStatus.Pending, (await audit.GetExecutionAsync(pending.Id, CancellationToken.None))!.Status);

        var answered = await inquiries.RespondAsync(pending.Id, new JsonObject { ["approve"] = true, ["reason"] = "looks fine" }, "alice", CancellationToken.None);

        Assert.Equal(ExecutionStatus.Succeeded, answered.Status);
        Assert.Equal(
            [ExecutionStatus.Requested, ExecutionStatus.Scheduled, ExecutionStatus.Running, ExecutionStatus.Pending, ExecutionStatus.Succeeded],
            (await audit.GetExecutionAsync(pending.Id, CancellationToken.None))!.History.Select(h => h.Status));
        Assert.True(answered.Result!["response"]!["approve"]!.GetValue<bool>());
        var chained = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(pending.TraceTag, CancellationToken.None),
            t => t.Executions.Any(e => e.Result?["stdout"]?.GetValue<string>() == "approved=True"));
        Assert.NotNull(chained);
        var again = await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(pending.Id, new JsonObject { ["approve"] = false }, "alice", CancellationToken.None));
        Assert.Equal(409, again.Status);
        Assert.Empty(await inquiries.ListPendingAsync(10, CancellationToken.None));
    }

    [Fact]
    public async Task AnsweringAndExpiringInquiries_AreSpansOfTheirTrace_AndTheSweepCountsThosePending()
    {
        using var spans = new SpanRecorder();
        using var packs = new TempPacks();
        var clock = new ManualTimeProvider(T0);
        var (host, _) = await StartAsync(packs, clock);
        await using var __ = host;
        var inquiries = host.Services.GetRequiredService<InquiryService>();
        var answered = await AskAsync(host, new JsonObject { ["ttl"] = 60 });
        var expiring = await AskAsync(host, new JsonObject { ["ttl"] = 5 });
        var waiting = await AskAsync(host, new JsonObject { ["ttl"] = 60 });
        long? pending = null;
        using var gauge = new System.Diagnostics.Metrics.MeterListener();
        gauge.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Name == ServerlessStorm.Engine.Diagnostics.StormMetrics.InquiriesPendingName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        gauge.SetMeasurementEventCallback<long>((_, value, _, _) => pending = value);
        gauge.Start();

        await inquiries.RespondAsync(answered.Id, new JsonObject { ["continue"] = true }, "st2admin", CancellationToken.None);
        await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(answered.Id, new JsonObject { ["continue"] = true }, "st2admin", CancellationToken.None));
        clock.Advance(TimeSpan.FromMinutes(6));
        Assert.Equal(1, await inquiries.ExpireDueAsync(CancellationToken.None));
        gauge.RecordObservableInstruments();

        var responses = spans.All.Where(s => s.OperationName == StormTracing.InquiryRespond && (string?)s.GetTagItem(StormTracing.ExecutionId) == answered.Id).ToList();
        Assert.Equal([System.Diagnostics.ActivityStatusCode.Unset, System.Diagnostics.ActivityStatusCode.Error], responses.Select(r => r.Status).Order());
        Assert.Equal(answered.TraceTag, responses.Single(r => r.Status == System.Diagnostics.ActivityStatusCode.Unset).GetTagItem(StormTracing.TraceTag));
        Assert.Single(spans.All, s => s.OperationName == StormTracing.InquiryExpire && (string?)s.GetTagItem(StormTracing.ExecutionId) == expiring.Id);
        // The sweep found two pending, timed one out: one still waits (read at once, before another host's sweep).
        Assert.Equal(1, pending);
        Assert.Equal(ExecutionStatus.Pending, (await inquiries.GetAsync(waiting.Id, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task Inquiry_PastItsTimeToLive_TimesOut_AndTakesNoResponse()
    {
        using var packs = new TempPacks();
        var clock = new ManualTimeProvider(T0);
        var (host, audit) = await StartAsync(packs, clock);
        await using var _ = host;
        var inquiries = host.Services.GetRequiredService<InquiryService>();
        var pending = await AskAsync(host, new JsonObject { ["ttl"] = 5 });

        clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(0, await inquiries.ExpireDueAsync(CancellationToken.None));
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(1, await inquiries.ExpireDueAsync(CancellationToken.None));

        var expired = (await audit.GetExecutionAsync(pending.Id, CancellationToken.None))!;
        Assert.Equal(ExecutionStatus.Timeout, expired.Status);
        Assert.Equal("no response within the inquiry's time to live (5 minutes)", expired.Error);
        var late = await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(pending.Id, new JsonObject { ["continue"] = true }, "st2admin", CancellationToken.None));
        Assert.Equal((409, $"inquiry '{pending.Id}' is timeout, not pending: it takes no more responses"), (late.Status, late.Message));
    }

    [Fact]
    public async Task Api_ListsGetsAndAnswersInquiries_WithTheDefaultContinueSchema()
    {
        using var packs = new TempPacks();
        var (host, _) = await StartAsync(packs);
        await using var __ = host;
        var pending = await AskAsync(host, []);

        var list = await host.Api.ListInquiriesAsync(new Dictionary<string, string?>(), CancellationToken.None);
        var wrong = await host.Api.RespondToInquiryAsync(pending.Id, JsonNode.Parse("""{"response": {"continue": "sure"}}"""), TestCallers.Admin, CancellationToken.None);
        var notAnObject = await host.Api.RespondToInquiryAsync(pending.Id, JsonNode.Parse("""{"response": [true]}"""), TestCallers.Admin, CancellationToken.None);
        var unknown = await host.Api.RespondToInquiryAsync("5f0000000000000000000000", JsonNode.Parse("""{"response": {"continue": true}}"""), TestCallers.Admin, CancellationToken.None);
        var ok = await host.Api.RespondToInquiryAsync(pending.Id, JsonNode.Parse("""{"id": "x", "response": {"continue": true}, "user": "bob"}"""), TestCallers.Admin, CancellationToken.None);
        var got = await host.Api.GetInquiryAsync(pending.Id, CancellationToken.None);

        Assert.Equal(pending.Id, list.Body!.AsArray().Single()!["id"]!.GetValue<string>());
        Assert.Equal("boolean", list.Body![0]!["schema"]!["properties"]!["continue"]!["type"]!.GetValue<string>());
        Assert.Equal(400, wrong.StatusCode);
        Assert.Equal("continue: expected boolean, got string", wrong.Body!["problems"]![0]!.GetValue<string>());
        Assert.Equal(400, notAnObject.StatusCode);
        Assert.Equal(404, unknown.StatusCode);
        Assert.Equal(200, ok.StatusCode);
        Assert.Equal("succeeded", got.Body!["status"]!.GetValue<string>());
        Assert.True(got.Body!["response"]!["continue"]!.GetValue<bool>());
    }

    [Fact]
    public async Task SecretFieldsOfAnAnswer_AreMaskedInTheRecordTheTriggerAndTheRefusals()
    {
        using var packs = new TempPacks().WithPack("ops");
        packs.Write("ops/rules/on_answer.yaml", """
            name: on_answer
            trigger: {type: core.st2.generic.actiontrigger}
            criteria: {trigger.action_ref: {type: equals, pattern: core.ask}}
            action: {ref: core.echo, parameters: {message: "pin={{ trigger.result.response.pin }} by={{ trigger.result.response.by }}"}}
            """);
        var (host, audit) = await StartAsync(packs);
        await using var _ = host;
        var inquiries = host.Services.GetRequiredService<InquiryService>();
        var schema = JsonNode.Parse("""{"type": "object", "properties": {"pin": {"type": "integer", "secret": true, "maximum": 9999}, "by": {"type": "string"}}}""");
        var pending = await AskAsync(host, new JsonObject { ["schema"] = schema });

        var refused = await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(pending.Id, new JsonObject { ["pin"] = 271828 }, "st2admin", CancellationToken.None));
        var answered = await inquiries.RespondAsync(pending.Id, new JsonObject { ["pin"] = 3141, ["by"] = "bob" }, "st2admin", CancellationToken.None);
        var stored = await audit.GetExecutionAsync(pending.Id, CancellationToken.None);
        var chained = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(pending.TraceTag, CancellationToken.None),
            t => t.Executions.Any(e => e.ActionRef == "core.echo" && e.Status == ExecutionStatus.Succeeded));

        Assert.Equal(["pin: does not match the schema (the value is secret, so it is not shown)"], refused.Problems);
        Assert.DoesNotContain("271828", refused.Message);
        Assert.Equal("""{"pin":"********","by":"bob"}""", answered.Result!["response"]!.ToJsonString());
        Assert.Equal("""{"pin":"********","by":"bob"}""", stored!.Result!["response"]!.ToJsonString());
        Assert.Equal("pin=******** by=bob", chained.Executions.Single(e => e.ActionRef == "core.echo").Result!["stdout"]!.GetValue<string>());
    }

    [Fact]
    public async Task NestedSecretFields_AndSecretsAProblemWouldReformat_AreNeverShown()
    {
        using var packs = new TempPacks().WithPack("ops");
        var (host, audit) = await StartAsync(packs);
        await using var _ = host;
        var inquiries = host.Services.GetRequiredService<InquiryService>();
        var schema = JsonNode.Parse("""
            {"type": "object", "properties": {
              "pin": {"type": "number", "secret": true, "maximum": 9999},
              "word": {"type": "string", "secret": true, "enum": ["a", "b"]},
              "creds": {"type": "object", "properties": {"user": {"type": "string"}, "password": {"type": "string", "secret": true, "minLength": 20}}},
              "keys": {"type": "array", "items": {"type": "string", "secret": true}}}}
            """);
        var pending = await AskAsync(host, new JsonObject { ["schema"] = schema });

        // 271828.0 would print as 271828, and p@ss+w'rd as p@ss\u002Bw\u0027rd: neither is the text that was sent.
        var refused = await Assert.ThrowsAsync<InquiryRefusedException>(() => inquiries.RespondAsync(pending.Id,
            JsonNode.Parse("""{"pin": 271828.0, "word": "p@ss+w'rd", "creds": {"user": "ops", "password": "short-nested"}}""")!, "st2admin", CancellationToken.None));
        var answered = await inquiries.RespondAsync(pending.Id,
            JsonNode.Parse("""{"pin": 1234, "word": "a", "creds": {"user": "ops", "password": "a-long-enough-nested-secret"}, "keys": ["k-one", "k-two"]}""")!, "st2admin", CancellationToken.None);

        foreach (var leaked in new[] { "271828", "p@ss", "short-nested" })
        {
            Assert.DoesNotContain(leaked, refused.Message);
        }

        Assert.Equal(3, refused.Problems.Count);
        var stored = (await audit.GetExecutionAsync(pending.Id, CancellationToken.None))!;
        Assert.Equal("""{"pin":"********","word":"********","creds":{"user":"ops","password":"********"},"keys":["********","********"]}""",
            stored.Result!["response"]!.ToJsonString());
        Assert.Equal(stored.Result["response"]!.ToJsonString(), answered.Result!["response"]!.ToJsonString());
        Assert.DoesNotContain("a-long-enough-nested-secret", stored.SealedResult!.ToJsonString()); // sealed, not in the clear
    }

    [Fact]
    public async Task Inquiry_WithAnInvalidSchema_FailsAtOnce()
    {
        using var packs = new TempPacks();
        var (host, _) = await StartAsync(packs);
        await using var __ = host;

        var asked = await host.Services.GetRequiredService<ExecutionService>().RunAsync("core.ask",
            new JsonObject { ["schema"] = JsonNode.Parse("""{"type": "object", "properties": {"ok": {"type": "bool"}}}""") }, null, TestCallers.Admin.User, CancellationToken.None);
        var failed = await host.WaitForExecutionAsync(asked.Id);

        Assert.Equal(ExecutionStatus.Failed, failed.Status);
        Assert.Contains("ok: type 'bool' is not one of string, integer, number, boolean, object, array, null", failed.Error, StringComparison.Ordinal);
    }
}
