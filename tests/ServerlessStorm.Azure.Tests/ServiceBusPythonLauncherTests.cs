using System.Collections.Concurrent;
using System.Text;
using Azure.Messaging.ServiceBus;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Python;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Python;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>
/// The launcher against the SDK's own types subclassed in memory (no Service Bus here): what it sends where, in which
/// session, how it reads the replies to the exit, kills once, and gives up on a silent host at the deadline.
/// </summary>
public sealed class ServiceBusPythonLauncherTests
{
    private static readonly PythonLaunch Launch = new("exec-9", "examples", ["--x"], new Dictionary<string, string> { ["K"] = "V" }, null, TimeSpan.FromMinutes(2));

    private readonly FakeBus _bus = new();
    private readonly ManualTimeProvider _time = new(DateTimeOffset.UtcNow);

    private ServiceBusPythonLauncher Launcher() => new(_bus, Options.Create(new StormOptions { PacksPath = "/srv/app/packs" }), _time, NullLogger<ServiceBusPythonLauncher>.Instance);

    [Fact]
    public async Task Start_TakesTheReplySession_ThenSendsTheJobInTheLaunchSession()
    {
        await using var process = await Launcher().StartAsync(Launch, CancellationToken.None);

        Assert.Equal(["accept python-replies exec-9", "send python-jobs exec-9"], _bus.Events);
        var job = _bus.Sent[PythonChannel.Jobs].Single();
        Assert.Equal("/srv/app/packs", JsonBody(job)["packsRoot"]);
        Assert.Equal(_time.GetUtcNow() + Launch.Deadline, DateTimeOffset.Parse(JsonBody(job)["deadline"], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Lines_ComeBackInOrder_ThenTheExitSetsTheCodeAndDiagnostics_AndDisposingAfterItKillsNothing()
    {
        _bus.Replies.Enqueue([Reply("line", "{\"a\":1}"), Reply("line", "{\"b\":2}")]);
        _bus.Replies.Enqueue([Reply("line", "{\"c\":3}"), Reply("exit", "warning: x", exitCode: 4L), Reply("line", "after the exit")]);
        var process = await Launcher().StartAsync(Launch, CancellationToken.None);

        var lines = new List<string>();
        await foreach (var line in process.ReadLinesAsync(CancellationToken.None))
        {
            lines.Add(line);
        }

        await process.DisposeAsync();
        Assert.Equal(["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"], lines);
        Assert.Equal((4, "warning: x"), (process.ExitCode, process.Diagnostics));
        Assert.False(_bus.Sent.ContainsKey(PythonChannel.Input));
        Assert.True(_bus.Receiver.Disposed);
    }

    [Fact]
    public async Task Input_AndTheKill_GoToTheLaunchSession_AndTheKillOnlyOnce()
    {
        var process = await Launcher().StartAsync(Launch, CancellationToken.None);

        await process.SendAsync("{\"answer\":1}", CancellationToken.None);
        await process.KillAsync();
        await process.KillAsync();
        await process.DisposeAsync();

        var input = _bus.Sent[PythonChannel.Input];
        Assert.Equal([("exec-9", "line", "{\"answer\":1}"), ("exec-9", "kill", "")],
            input.Select(m => (m.SessionId, (string)m.ApplicationProperties["kind"], m.Body.ToString())));
    }

    [Fact]
    public async Task LongLinesSentAtOnce_GoInParts_OneLineAfterTheOther()
    {
        var process = await Launcher().StartAsync(Launch, CancellationToken.None);
        var a = new string('a', PythonChannel.PartBytes * 2 + 1);
        var b = new string('b', PythonChannel.PartBytes + 1);

        // Answers to two calls of the pack's code go out concurrently; the sender yields on every message.
        await Task.WhenAll(Task.Run(() => process.SendAsync(a, CancellationToken.None)), Task.Run(() => process.SendAsync(b, CancellationToken.None)));

        var input = _bus.Sent[PythonChannel.Input];
        Assert.Equal(5, input.Count);
        var joined = new List<string>();
        var line = new StringBuilder();
        foreach (var part in input)
        {
            line.Append(part.Body.ToString());
            if (!part.ApplicationProperties.ContainsKey(PythonChannel.MoreProperty))
            {
                joined.Add(line.ToString());
                line.Clear();
            }
        }

        Assert.Equal([a, b], joined.OrderBy(l => l[0]));
    }

    [Fact]
    public async Task ALineCutShortByAFailedSend_KillsTheRun_SoNoLineIsJoinedToHalfOfIt()
    {
        var process = await Launcher().StartAsync(Launch, CancellationToken.None);
        _bus.FailInputAfter = 1;

        await Assert.ThrowsAsync<ServiceBusException>(() => process.SendAsync(new string('a', PythonChannel.PartBytes + 1), CancellationToken.None));

        var input = _bus.Sent[PythonChannel.Input];
        Assert.Equal(["line", "kill"], input.Select(m => (string)m.ApplicationProperties["kind"]));
    }

    [Fact]
    public async Task AReplyLineInParts_AcrossReceives_ComesBackWhole()
    {
        var big = "{\"result\":\"" + new string('r', PythonChannel.PartBytes) + "\"}";
        var parts = PythonChannel.Line("exec-9", big, DateTimeOffset.UtcNow.AddMinutes(1))
            .Select(p => ServiceBusModelFactory.ServiceBusReceivedMessage(body: p.Body, sessionId: "exec-9",
                properties: p.ApplicationProperties.ToDictionary(x => x.Key, x => x.Value)))
            .ToList();
        _bus.Replies.Enqueue([Reply("line", "{\"a\":1}"), parts[0]]);
        _bus.Replies.Enqueue([parts[1], Reply("exit", "", exitCode: 0L)]);
        await using var process = await Launcher().StartAsync(Launch, CancellationToken.None);

        var lines = new List<string>();
        await foreach (var line in process.ReadLinesAsync(CancellationToken.None))
        {
            lines.Add(line);
        }

        Assert.Equal(["{\"a\":1}", big], lines);
        Assert.Equal(0, process.ExitCode);
    }

    [Fact]
    public async Task DisposingWhileItRuns_KillsIt()
    {
        _bus.Replies.Enqueue([Reply("line", "first")]);
        var process = await Launcher().StartAsync(Launch, CancellationToken.None);
        await foreach (var _ in process.ReadLinesAsync(CancellationToken.None))
        {
            break; // the reader stops (its execution was canceled)
        }

        await process.DisposeAsync();

        Assert.Equal("kill", Assert.Single(_bus.Sent[PythonChannel.Input]).ApplicationProperties["kind"]);
    }

    [Fact]
    public async Task ASilentHost_EndsTheReadAtTheDeadlineAndGrace_AsKilled()
    {
        // Every empty receive takes its whole wait: the clock moves by it.
        _bus.Receiver.OnEmpty = wait => _time.Advance(wait);
        var process = await Launcher().StartAsync(Launch, CancellationToken.None);
        var started = _time.GetUtcNow();

        var lines = new List<string>();
        await foreach (var line in process.ReadLinesAsync(CancellationToken.None))
        {
            lines.Add(line);
        }

        Assert.Empty(lines);
        Assert.Null(process.ExitCode);
        Assert.Contains("sent no exit for launch exec-9 by its deadline", process.Diagnostics, StringComparison.Ordinal);
        Assert.Equal(started + Launch.Deadline + ServiceBusPythonLauncher.ExitGrace, _time.GetUtcNow());
        // The session lock was kept while waiting that long.
        Assert.True(_bus.Receiver.Renewals > 0);
    }

    private static Dictionary<string, string> JsonBody(ServiceBusMessage message) =>
        System.Text.Json.Nodes.JsonNode.Parse(message.Body.ToString())!.AsObject()
            .Where(p => p.Value is System.Text.Json.Nodes.JsonValue).ToDictionary(p => p.Key, p => p.Value!.ToString());

    private static ServiceBusReceivedMessage Reply(string kind, string body, object? exitCode = null)
    {
        var properties = new Dictionary<string, object> { ["kind"] = kind };
        if (exitCode is not null)
        {
            properties["exitCode"] = exitCode;
        }

        return ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromBytes(Encoding.UTF8.GetBytes(body)), sessionId: "exec-9", properties: properties);
    }

    private sealed class FakeBus : ServiceBusClient
    {
        public List<string> Events { get; } = [];

        public ConcurrentDictionary<string, List<ServiceBusMessage>> Sent { get; } = new();

        public Queue<IReadOnlyList<ServiceBusReceivedMessage>> Replies => Receiver.Batches;

        public FakeSessionReceiver Receiver { get; } = new();

        /// <summary>Input sends after this many fail (a line's parts), except the kill.</summary>
        public int? FailInputAfter { get; set; }

        public override Task<ServiceBusSessionReceiver> AcceptSessionAsync(string queueName, string sessionId, ServiceBusSessionReceiverOptions? options = null, CancellationToken cancellationToken = default)
        {
            Events.Add($"accept {queueName} {sessionId}");
            Assert.Equal(ServiceBusReceiveMode.ReceiveAndDelete, options?.ReceiveMode);
            return Task.FromResult<ServiceBusSessionReceiver>(Receiver);
        }

        public override ServiceBusSender CreateSender(string queueOrTopicName) => new FakeSender(queueOrTopicName, this);

        private sealed class FakeSender(string queue, FakeBus bus) : ServiceBusSender
        {
            public override async Task SendMessageAsync(ServiceBusMessage message, CancellationToken cancellationToken = default)
            {
                // A real send goes over the network: other sends run meanwhile.
                await Task.Yield();
                lock (bus)
                {
                    if (queue == PythonChannel.Input && bus.FailInputAfter is { } after && message.ApplicationProperties["kind"] is "line"
                        && bus.Sent.GetValueOrDefault(queue)?.Count >= after)
                    {
                        throw new ServiceBusException("the connection dropped", ServiceBusFailureReason.ServiceCommunicationProblem);
                    }

                    bus.Events.Add($"send {queue} {message.SessionId}");
                    bus.Sent.GetOrAdd(queue, _ => []).Add(message);
                }
            }
        }
    }

    private sealed class FakeSessionReceiver : ServiceBusSessionReceiver
    {
        public Queue<IReadOnlyList<ServiceBusReceivedMessage>> Batches { get; } = new();

        public Action<TimeSpan> OnEmpty { get; set; } = _ => { };

        public DateTimeOffset LockedUntil { get; set; } = DateTimeOffset.MinValue;

        public int Renewals { get; private set; }

        public bool Disposed { get; private set; }

        public override DateTimeOffset SessionLockedUntil => LockedUntil;

        public override Task RenewSessionLockAsync(CancellationToken cancellationToken = default)
        {
            Renewals++;
            LockedUntil = DateTimeOffset.MaxValue;
            return Task.CompletedTask;
        }

        public override Task<IReadOnlyList<ServiceBusReceivedMessage>> ReceiveMessagesAsync(int maxMessages, TimeSpan? maxWaitTime = null, CancellationToken cancellationToken = default)
        {
            if (Batches.TryDequeue(out var batch))
            {
                return Task.FromResult(batch);
            }

            OnEmpty(maxWaitTime!.Value);
            return Task.FromResult<IReadOnlyList<ServiceBusReceivedMessage>>([]);
        }

        public override ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }
}
