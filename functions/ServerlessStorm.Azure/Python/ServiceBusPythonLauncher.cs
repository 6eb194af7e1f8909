using System.Runtime.CompilerServices;
using Azure.Messaging.ServiceBus;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Python;

namespace ServerlessStorm.Azure.Python;

/// <summary>
/// Runs Python wrappers on the Python Function app (Azure has no Python beside the .NET app on Flex Consumption): the
/// launch goes to <see cref="PythonChannel.Jobs"/>, standard input to <see cref="PythonChannel.Input"/>, and the
/// wrapper's lines come back on <see cref="PythonChannel.Replies"/>, all in the launch's session. Only the process is
/// remote: the caller (the executor, the sensor scheduler) records, times out, cancels and masks as it does locally.
/// </summary>
public sealed class ServiceBusPythonLauncher : IPythonLauncher
{
    /// <summary>The Python app runs its own interpreter, with each pack's dependencies installed when it was deployed.</summary>
    public bool ChoosesInterpreter => false;

    /// <summary>How long past the deadline the exit is waited for: the host kills at the deadline, then reports.</summary>
    public static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(30);

    private readonly ServiceBusClient _client;
    private readonly string _packsRoot;
    private readonly TimeProvider _time;
    private readonly ILogger<ServiceBusPythonLauncher> _logger;
    private readonly Lazy<ServiceBusSender> _jobs;
    private readonly Lazy<ServiceBusSender> _input;

    public ServiceBusPythonLauncher(ServiceBusClient client, IOptions<StormOptions> storm, TimeProvider time, ILogger<ServiceBusPythonLauncher> logger)
    {
        _client = client;
        _packsRoot = Path.GetFullPath(storm.Value.PacksPath);
        _time = time;
        _logger = logger;
        _jobs = new(() => client.CreateSender(PythonChannel.Jobs));
        _input = new(() => client.CreateSender(PythonChannel.Input));
    }

    public async Task<IPythonProcess> StartAsync(PythonLaunch launch, CancellationToken cancellationToken)
    {
        var deadline = _time.GetUtcNow() + launch.Deadline;

        // The reply session is taken before the job leaves, so no other .NET instance can hold it.
        var replies = await _client.AcceptSessionAsync(PythonChannel.Replies, launch.Id,
            new ServiceBusSessionReceiverOptions { ReceiveMode = ServiceBusReceiveMode.ReceiveAndDelete, PrefetchCount = 64 }, cancellationToken);
        try
        {
            await _jobs.Value.SendMessageAsync(PythonChannel.Job(launch, _packsRoot, deadline), cancellationToken);
        }
        catch
        {
            await replies.DisposeAsync();
            throw;
        }

        _logger.PythonLaunchSent(launch.Id, launch.Pack, deadline);
        return new Process(launch.Id, deadline, replies, _input.Value, _time, _logger);
    }

    private sealed class Process(string id, DateTimeOffset deadline, ServiceBusSessionReceiver replies, ServiceBusSender input, TimeProvider time,
        ILogger logger) : IPythonProcess
    {
        private readonly SemaphoreSlim _sending = new(1, 1);
        private readonly PythonReplyParts _parts = new();
        private int _killed;
        private bool _exited;

        public int? ExitCode { get; private set; }

        public string Diagnostics { get; private set; } = "";

        public async Task SendAsync(string line, CancellationToken cancellationToken)
        {
            // One line at a time: the parts of two lines sent at once (answers to concurrent calls) must not interleave.
            await _sending.WaitAsync(cancellationToken);
            var sent = 0;
            try
            {
                foreach (var part in PythonChannel.Line(id, line, deadline))
                {
                    await input.SendMessageAsync(part, cancellationToken);
                    sent++;
                }
            }
            catch when (sent > 0)
            {
                // Half a line went: the next would be joined to it. The run cannot go on.
                await KillAsync();
                throw;
            }
            finally
            {
                _sending.Release();
            }
        }

        public async IAsyncEnumerable<string> ReadLinesAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            while (!_exited)
            {
                var left = PythonDeadline.WaitLeft(deadline, ExitGrace, time.GetUtcNow());
                if (left <= TimeSpan.Zero)
                {
                    // The host died with the process, or never took the launch: nothing more will come.
                    _exited = true;
                    Diagnostics = PythonDeadline.SilentHost(id);
                    logger.PythonHostSilent(id);
                    yield break;
                }

                await RenewIfDueAsync(cancellationToken);
                var batch = await replies.ReceiveMessagesAsync(100, Min(left, TimeSpan.FromSeconds(20)), cancellationToken);
                foreach (var message in batch)
                {
                    if (_parts.Add(message) is not { } reply)
                    {
                        continue;
                    }

                    if (reply.Kind == PythonChannel.Kinds.Exit)
                    {
                        ExitCode = reply.ExitCode;
                        Diagnostics = reply.Text;
                        _exited = true;
                        logger.PythonLaunchExited(id, reply.ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "killed");
                        yield break;
                    }

                    yield return reply.Text;
                }
            }
        }

        // A session lock is not renewed by the receiver itself; a long run would lose its replies without this.
        private async Task RenewIfDueAsync(CancellationToken cancellationToken)
        {
            if (replies.SessionLockedUntil - time.GetUtcNow() < TimeSpan.FromSeconds(30))
            {
                await replies.RenewSessionLockAsync(cancellationToken);
            }
        }

        public async Task KillAsync()
        {
            if (_exited || Interlocked.Exchange(ref _killed, 1) == 1)
            {
                return;
            }

            logger.PythonKillSent(id);
            await input.SendMessageAsync(PythonChannel.Kill(id, deadline + ExitGrace), CancellationToken.None);
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                // Left running (the caller stopped reading): the host kills it rather than run it to the deadline.
                await KillAsync();
            }
            finally
            {
                await replies.DisposeAsync();
            }
        }

        private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
    }
}

/// <summary>The timing rules both ends keep (function_app.py's relay kills at the same deadline).</summary>
public static class PythonDeadline
{
    /// <summary>How long the reader still waits for the wrapper's next line or its exit.</summary>
    public static TimeSpan WaitLeft(DateTimeOffset deadline, TimeSpan grace, DateTimeOffset now) => deadline + grace - now;

    public static string SilentHost(string id) =>
        $"the Python host sent no exit for launch {id} by its deadline (the host instance was lost, or no instance took the launch before it expired)";
}
