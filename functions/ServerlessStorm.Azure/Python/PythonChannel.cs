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
    public static ServiceBusMessage Job(PythonLaunch launch, string packsRoot, DateTimeOffset deadline)
    {
        var job = new PythonJob(launch.Id, launch.Pack, launch.Arguments, launch.Environment, launch.WorkingDirectory, packsRoot, deadline);
        return new ServiceBusMessage(JsonSerializer.SerializeToUtf8Bytes(job, JobJson))
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

    /// <summary>One line for the wrapper's standard input.</summary>
    public static ServiceBusMessage Line(string id, string line, DateTimeOffset deadline) => ToInput(id, Kinds.Line, line, deadline);

    /// <summary>Asks the Python host to kill the wrapper's process group.</summary>
    public static ServiceBusMessage Kill(string id, DateTimeOffset deadline) => ToInput(id, Kinds.Kill, "", deadline);

    private static ServiceBusMessage ToInput(string id, string kind, string body, DateTimeOffset deadline) => new(Encoding.UTF8.GetBytes(body))
    {
        SessionId = id,
        ContentType = LineContentType,
        ApplicationProperties = { [KindProperty] = kind },
        TimeToLive = Positive(deadline - DateTimeOffset.UtcNow),
    };

    /// <summary>A message on <see cref="Replies"/>: a protocol line, or the exit with the host's diagnostics.</summary>
    public static PythonReply ReadReply(ServiceBusReceivedMessage message)
    {
        var kind = message.ApplicationProperties.TryGetValue(KindProperty, out var k) ? k as string : null;
        var text = Encoding.UTF8.GetString(message.Body.ToMemory().Span);
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

/// <summary>A launch on the wire (camelCase JSON; function_app.py reads these names).</summary>
public sealed record PythonJob(string Id, string Pack, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment,
    string? WorkingDirectory, string PacksRoot, DateTimeOffset Deadline);

/// <summary>What came back: a protocol line (<see cref="Text"/>), or the exit (<see cref="Text"/> the diagnostics).</summary>
public sealed record PythonReply(string Kind, string Text, int? ExitCode);
