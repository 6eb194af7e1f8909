using System.Text;
using System.Text.Json.Nodes;
using Azure.Messaging.ServiceBus;
using ServerlessStorm.Azure.Python;
using ServerlessStorm.Engine.Python;

namespace ServerlessStorm.Azure.Tests;

/// <summary>
/// The wire to the Python host, through the SDK's model factory (no Service Bus here): each launch's messages in the
/// session named by its id, the launch and its input expiring at the deadline, the replies read back.
/// </summary>
public sealed class PythonChannelTests
{
    private static readonly PythonLaunch Launch = new("exec-42", "examples", ["--action", "/app/packs/examples/actions/hello.py"],
        new Dictionary<string, string> { ["PYTHONPATH"] = "/app/packs/examples/lib", ["ST2_ACTION_API_URL"] = "http://x" },
        "/app/packs/examples/actions", TimeSpan.FromMinutes(10));

    [Fact]
    public void Job_IsInTheLaunchSession_WithTheLaunchAsJson_AndExpiresAtTheDeadline()
    {
        var deadline = DateTimeOffset.UtcNow + Launch.Deadline;

        var message = PythonChannel.Job(Launch, "/app/packs", deadline);

        Assert.Equal(("exec-42", "exec-42"), (message.SessionId, message.MessageId));
        Assert.Equal("application/json", message.ContentType);
        Assert.InRange(message.TimeToLive, TimeSpan.FromMinutes(9.9), TimeSpan.FromMinutes(10));
        var json = JsonNode.Parse(message.Body.ToString())!;
        // The names function_app.py / storm_relay.Job.parse read.
        Assert.Equal("examples", json["pack"]!.GetValue<string>());
        Assert.Equal("/app/packs", json["packsRoot"]!.GetValue<string>());
        Assert.Equal("/app/packs/examples/actions", json["workingDirectory"]!.GetValue<string>());
        Assert.Equal(["--action", "/app/packs/examples/actions/hello.py"], json["arguments"]!.AsArray().Select(a => a!.GetValue<string>()));
        Assert.Equal("/app/packs/examples/lib", json["environment"]!["PYTHONPATH"]!.GetValue<string>());
        Assert.Equal(deadline, json["deadline"]!.GetValue<DateTimeOffset>());
    }

    [Fact]
    public void Job_RoundTrips_ThroughAReceivedMessage()
    {
        var deadline = DateTimeOffset.UtcNow.AddMinutes(1);
        var sent = PythonChannel.Job(Launch with { WorkingDirectory = null }, "/app/packs", deadline);
        var received = ServiceBusModelFactory.ServiceBusReceivedMessage(body: sent.Body, messageId: sent.MessageId, sessionId: sent.SessionId);

        var job = PythonChannel.ReadJob(received);

        Assert.Equal((Launch.Id, Launch.Pack, (string?)null, deadline), (job.Id, job.Pack, job.WorkingDirectory, job.Deadline));
        Assert.Equal(Launch.Environment, job.Environment);
    }

    [Fact]
    public void AJobAlreadyPastItsDeadline_StillHasAValidTimeToLive_AndExpiresAtOnce()
    {
        var message = PythonChannel.Job(Launch, "/app/packs", DateTimeOffset.UtcNow.AddSeconds(-5));

        Assert.Equal(TimeSpan.FromSeconds(1), message.TimeToLive);
    }

    [Fact]
    public void InputLines_AndTheKill_AreInTheLaunchSession_MarkedByKind()
    {
        var deadline = DateTimeOffset.UtcNow.AddMinutes(5);

        var line = Assert.Single(PythonChannel.Line("exec-42", """{"type":"datastore","value":"v"}""", deadline));
        var kill = PythonChannel.Kill("exec-42", deadline);

        Assert.Equal(("exec-42", "line", """{"type":"datastore","value":"v"}"""), (line.SessionId, line.ApplicationProperties["kind"], line.Body.ToString()));
        Assert.Equal(("exec-42", "kill", ""), (kill.SessionId, kill.ApplicationProperties["kind"], kill.Body.ToString()));
        Assert.InRange(line.TimeToLive, TimeSpan.FromMinutes(4.9), TimeSpan.FromMinutes(5));
        Assert.False(line.ApplicationProperties.ContainsKey("more"));
    }

    [Fact]
    public void ALineOverTheMessageLimit_GoesInPartsUnderIt_AndIsJoinedWhole_EvenWhereACharacterIsCut()
    {
        // A job with a large config: 'é' is two bytes, so the odd offset puts a cut inside a character.
        var line = "{\"config\":\"" + "x" + new string('é', 300_000) + "\"}";

        var parts = PythonChannel.Line("exec-42", line, DateTimeOffset.UtcNow.AddMinutes(5));

        Assert.Equal(4, parts.Count); // 600 KB in 192 KiB parts
        Assert.All(parts, p => Assert.InRange(p.Body.ToMemory().Length, 1, PythonChannel.PartBytes));
        Assert.Equal([true, true, true, false], parts.Select(p => p.ApplicationProperties.ContainsKey("more")));
        Assert.All(parts, p => Assert.Equal(("exec-42", "line"), (p.SessionId, p.ApplicationProperties["kind"])));

        var joiner = new PythonReplyParts();
        var replies = parts.Select(p => joiner.Add(Received(p))).ToList();

        Assert.Equal([null, null, null], replies.Take(3));
        Assert.Equal(new PythonReply("line", line, null), replies[3]);
    }

    [Fact]
    public void AnExitAfterALineCutShort_DropsTheCutLine_AndTheNextLineIsWhole()
    {
        var joiner = new PythonReplyParts();
        var first = PythonChannel.Line("exec-42", new string('a', PythonChannel.PartBytes + 10), DateTimeOffset.UtcNow.AddMinutes(5))[0];

        Assert.Null(joiner.Add(Received(first)));
        Assert.Equal(new PythonReply("exit", "send failed", null), joiner.Add(Reply("exit", "send failed")));
        Assert.Equal(new PythonReply("line", "{}", null), joiner.Add(Reply("line", "{}")));
    }

    [Fact]
    public void ALineOverTheRelaysLimit_IsRefused_RatherThanHeldInMemory()
    {
        var joiner = new PythonReplyParts();
        var huge = ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromBytes(new byte[PythonReplyParts.MaxLineBytes + 1]), sessionId: "exec-42",
            properties: new Dictionary<string, object> { ["kind"] = "line", ["more"] = true });

        var error = Assert.Throws<InvalidDataException>(() => joiner.Add(huge));

        Assert.Contains("python-replies (session exec-42) is over 32 MiB", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnEmptyLine_IsOneMessage()
    {
        var part = Assert.Single(PythonChannel.Line("exec-42", "", DateTimeOffset.UtcNow.AddMinutes(5)));

        Assert.Equal(0, part.Body.ToMemory().Length);
    }

    [Fact]
    public void ALaunchTooLargeForAMessage_IsRefused_SayingWhy()
    {
        var huge = Launch with { Environment = new Dictionary<string, string> { ["BIG"] = new string('v', 300_000) } };

        var error = Assert.Throws<ArgumentException>(() => PythonChannel.Job(huge, "/app/packs", DateTimeOffset.UtcNow.AddMinutes(1)));

        Assert.Contains("python launch exec-42 is 293 KB, over the 192 KB a Service Bus message takes", error.Message, StringComparison.Ordinal);
        Assert.Contains("environment (1 variables)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Replies_AreLines_ThenTheExitWithItsCodeAndDiagnostics()
    {
        var line = Reply("line", """{"type":"result"}""");
        var exit = Reply("exit", "Traceback ...", exitCode: 1L); // the Python SDK sends an int as an AMQP long
        var killed = Reply("exit", "[python host] killed at the launch's deadline");

        Assert.Equal(new PythonReply("line", """{"type":"result"}""", null), PythonChannel.ReadReply(line));
        Assert.Equal(new PythonReply("exit", "Traceback ...", 1), PythonChannel.ReadReply(exit));
        Assert.Equal(new PythonReply("exit", "[python host] killed at the launch's deadline", null), PythonChannel.ReadReply(killed));
    }

    [Fact]
    public void AReplyOfAnUnknownKind_IsRefused_NamingTheQueueAndSession()
    {
        var error = Assert.Throws<InvalidDataException>(() => PythonChannel.ReadReply(Reply("stdout", "x")));

        Assert.Contains("python-replies (session exec-42) has kind 'stdout'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 30)]
    [InlineData(10, 20)]
    [InlineData(40, -10)]
    public void TheReader_WaitsForTheExit_UntilThirtySecondsPastTheDeadline(int secondsPastStart, int expectedLeft)
    {
        var deadline = DateTimeOffset.UnixEpoch;

        Assert.Equal(TimeSpan.FromSeconds(expectedLeft), PythonDeadline.WaitLeft(deadline, ServiceBusPythonLauncher.ExitGrace, deadline.AddSeconds(secondsPastStart)));
    }

    private static ServiceBusReceivedMessage Received(ServiceBusMessage sent) =>
        ServiceBusModelFactory.ServiceBusReceivedMessage(body: sent.Body, sessionId: sent.SessionId,
            properties: sent.ApplicationProperties.ToDictionary(p => p.Key, p => p.Value));

    private static ServiceBusReceivedMessage Reply(string kind, string body, object? exitCode = null)
    {
        var properties = new Dictionary<string, object> { ["kind"] = kind };
        if (exitCode is not null)
        {
            properties["exitCode"] = exitCode;
        }

        return ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromBytes(Encoding.UTF8.GetBytes(body)), sessionId: "exec-42", properties: properties);
    }
}
