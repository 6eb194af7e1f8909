using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure.Messaging.ServiceBus;
using ServerlessStorm.Engine.Python;

namespace ServerlessStorm.Azure.Python;

/// <summary>
/// The wire between the Function app and the Python host (functions/ServerlessStorm.PythonHost/function_app.py):
/// three Service Bus session queues, each launch's messages in the session named by its id, so they stay in order
/// and reach only the two ends of that launch.
/// </summary>
public static class PythonChannel
{
    /// <summary>The launches: the Python host's trigger.</summary>
    public const string Jobs = "python-jobs";

    /// <summary>Lines for the wrapper's standard input, and the kill.</summary>
    public const string Input = "python-input";

    /// <summary>The wrapper's protocol lines, then its exit.</summary>
    public const string Replies = "python-replies";

    public static readonly string[] Queues = [Jobs, Input, Replies];

    /// <summary>The application property that says what a message on <see cref="Input"/> or <see cref="Replies"/> is.</summary>
    public const string KindProperty = "kind";

    /// <summary>On an exit message: the wrapper's exit code (absent when it was killed).</summary>
    public const string ExitCodeProperty = "exitCode";

    /// <summary>On a line's part: true when more parts of the same line follow (the line is cut, see <see cref="PartBytes"/>).</summary>
    public const string MoreProperty = "more";

    /// <summary>
    /// The most a message carries of a line, in bytes. Service Bus Standard takes messages up to 256 KB with their
    /// headers, and a result or a job (parameters, the pack's config) can be larger: a longer line goes as parts in
    /// order in its session, which keeps them in order, and the other end joins them (storm_relay.py's PART_BYTES too).
    /// </summary>
    public const int PartBytes = 192 * 1024;

    public static class Kinds
    {
        public const string Line = "line";

        public const string Kill = "kill";

        public const string Exit = "exit";
    }

    public const string JobContentType = "application/json";

    public const string LineContentType = "text/plain; charset=utf-8";

    /// <summary>
    /// The launch as the Python host reads it. The host has its own copy of the packs: <paramref name="packsRoot"/> (this
    /// app's packs folder) is sent so the host can put its own folder wherever an argument or a variable names ours.
    /// The message expires at the deadline: a launch no Python instance took in time is not started late.
    /// </summary>
    /// <exception cref="ArgumentException">The launch is larger than a message can be (its environment, usually).</exception>
    public static ServiceBusMessage Job(PythonLaunch launch, string packsRoot, DateTimeOffset deadline)
    {
        var job = new PythonJob(launch.Id, launch.Pack, launch.Arguments, launch.Environment, launch.WorkingDirectory, packsRoot, deadline);
        var body = JsonSerializer.SerializeToUtf8Bytes(job, JobJson);
        if (body.Length > PartBytes)
        {
            // The job's own content (parameters, config) goes on the input, in parts; only what starts the process is here.
            throw new ArgumentException(
                $"python launch {launch.Id} is {body.Length / 1024} KB, over the {PartBytes / 1024} KB a Service Bus message takes: " +
                $"its arguments and environment ({launch.Environment.Count} variables) are too large", nameof(launch));
        }

        return new ServiceBusMessage(body)
        {
            MessageId = launch.Id,
            SessionId = launch.Id,
            ContentType = JobContentType,
            TimeToLive = Positive(deadline - DateTimeOffset.UtcNow),
        };
    }

    public static PythonJob ReadJob(ServiceBusReceivedMessage message) =>
        JsonSerializer.Deserialize<PythonJob>(message.Body.ToMemory().Span, JobJson)
        ?? throw new InvalidDataException($"python job {message.MessageId} is empty");

    /// <summary>One line for the wrapper's standard input: one message, or its parts in order when it is longer than <see cref="PartBytes"/>.</summary>
    public static IReadOnlyList<ServiceBusMessage> Line(string id, string line, DateTimeOffset deadline)
    {
        var bytes = Encoding.UTF8.GetBytes(line);
        var parts = new List<ServiceBusMessage>(bytes.Length / PartBytes + 1);
        for (var start = 0; start == 0 || start < bytes.Length; start += PartBytes)
        {
            var length = Math.Min(PartBytes, bytes.Length - start);
            var part = ToInput(id, Kinds.Line, new BinaryData(bytes.AsMemory(start, length)), deadline);
            if (start + length < bytes.Length)
            {
                part.ApplicationProperties[MoreProperty] = true;
            }

            parts.Add(part);
        }

        return parts;
    }

    /// <summary>Asks the Python host to kill the wrapper's process group.</summary>
    public static ServiceBusMessage Kill(string id, DateTimeOffset deadline) => ToInput(id, Kinds.Kill, BinaryData.Empty, deadline);

    private static ServiceBusMessage ToInput(string id, string kind, BinaryData body, DateTimeOffset deadline) => new(body)
    {
        SessionId = id,
        ContentType = LineContentType,
        ApplicationProperties = { [KindProperty] = kind },
        TimeToLive = Positive(deadline - DateTimeOffset.UtcNow),
    };

    /// <summary>Whether more parts of the same line follow this message.</summary>
    public static bool HasMore(ServiceBusReceivedMessage message) =>
        message.ApplicationProperties.TryGetValue(MoreProperty, out var more) && more is true;

    /// <summary>A message on <see cref="Replies"/>: a protocol line, or the exit with the host's diagnostics.</summary>
    public static PythonReply ReadReply(ServiceBusReceivedMessage message) => ReadReply(message, message.Body.ToMemory().Span);

    /// <summary>As <see cref="ReadReply(ServiceBusReceivedMessage)"/>, for a line joined from its parts (<paramref name="body"/>).</summary>
    public static PythonReply ReadReply(ServiceBusReceivedMessage message, ReadOnlySpan<byte> body)
    {
        var kind = message.ApplicationProperties.TryGetValue(KindProperty, out var k) ? k as string : null;
        var text = Encoding.UTF8.GetString(body);
        return kind switch
        {
            Kinds.Line => new PythonReply(Kinds.Line, text, null),
            Kinds.Exit => new PythonReply(Kinds.Exit, text, message.ApplicationProperties.TryGetValue(ExitCodeProperty, out var code) && code is not null
                ? Convert.ToInt32(code, System.Globalization.CultureInfo.InvariantCulture) : null),
            _ => throw new InvalidDataException($"a message on {Replies} (session {message.SessionId}) has {KindProperty} '{kind}': expected '{Kinds.Line}' or '{Kinds.Exit}'"),
        };
    }

    // Service Bus refuses a zero or negative time to live; a launch already past its deadline expires at once.
    private static TimeSpan Positive(TimeSpan ttl) => ttl > TimeSpan.FromSeconds(1) ? ttl : TimeSpan.FromSeconds(1);

    private static readonly JsonSerializerOptions JobJson = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.Never };
}

/// <summary>
/// Joins the parts of the lines that come back on <see cref="PythonChannel.Replies"/>: a part with
/// <see cref="PythonChannel.MoreProperty"/> is kept until the last part of its line. The bytes are joined before
/// they are decoded, so a character cut between two parts comes back whole.
/// </summary>
public sealed class PythonReplyParts
{
    /// <summary>The longest line joined, as the relay reads at most this much of a line (storm_relay.py's LINE_LIMIT).</summary>
    public const int MaxLineBytes = 32 * 1024 * 1024;

    private readonly MemoryStream _pending = new();

    /// <summary>The whole reply once its last part is here; null while parts of a line are still to come.</summary>
    public PythonReply? Add(ServiceBusReceivedMessage message)
    {
        var body = message.Body.ToMemory().Span;
        if (message.ApplicationProperties.TryGetValue(PythonChannel.KindProperty, out var kind) && kind is PythonChannel.Kinds.Exit)
        {
            // A line whose last part never came (its send failed): the exit says why, the cut line is dropped.
            _pending.SetLength(0);
            return PythonChannel.ReadReply(message, body);
        }

        if (_pending.Length + body.Length > MaxLineBytes)
        {
            // Nothing the relay sends is this long: the session is not the relay's alone.
            throw new InvalidDataException($"a line on {PythonChannel.Replies} (session {message.SessionId}) is over {MaxLineBytes / (1024 * 1024)} MiB");
        }

        if (PythonChannel.HasMore(message))
        {
            _pending.Write(body);
            return null;
        }

        if (_pending.Length == 0)
        {
            return PythonChannel.ReadReply(message, body);
        }

        _pending.Write(body);
        var reply = PythonChannel.ReadReply(message, _pending.GetBuffer().AsSpan(0, (int)_pending.Length));
        _pending.SetLength(0);
        return reply;
    }
}

/// <summary>A launch on the wire (camelCase JSON; function_app.py reads these names).</summary>
public sealed record PythonJob(string Id, string Pack, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment,
    string? WorkingDirectory, string PacksRoot, DateTimeOffset Deadline);

/// <summary>What came back: a protocol line (<see cref="Text"/>), or the exit (<see cref="Text"/> the diagnostics).</summary>
public sealed record PythonReply(string Kind, string Text, int? ExitCode);
