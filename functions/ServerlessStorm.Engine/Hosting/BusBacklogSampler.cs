using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Engine.Hosting;

/// <summary>
/// Asks the bus for each engine queue's backlog every <see cref="BusOptions.BacklogSampleInterval"/> (from the start)
/// and hands it to the gauges <c>storm.bus.queue.depth</c> and <c>storm.bus.queue.oldest_age</c>. Every host runs one,
/// so with several instances each reports the same shared queues: read the gauges by their maximum.
/// </summary>
public sealed class BusBacklogSampler(IMessageBus bus, IOptions<BusOptions> options, TimeProvider time) : BackgroundService
{
    /// <summary>The queues sampled: the engine's.</summary>
    public IReadOnlyList<string> Queues { get; init; } = StormQueues.All;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.BacklogSampleInterval;
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        using var ticker = new PeriodicTimer(interval, time);
        try
        {
            do
            {
                await SampleAsync(stoppingToken);
            }
            while (await ticker.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Samples every queue once.</summary>
    public async Task SampleAsync(CancellationToken cancellationToken)
    {
        foreach (var queue in Queues)
        {
            try
            {
                var backlog = await bus.GetBacklogAsync(queue, cancellationToken);
                StormMetrics.BacklogSampled(queue, backlog.Depth, backlog.OldestEnqueuedAt is { } oldest ? time.GetUtcNow() - oldest : TimeSpan.Zero);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // The bus could not say (unreachable, throttled): its gauges report nothing rather than old figures,
                // and the next sample tries again.
                StormMetrics.BacklogUnknown(queue);
            }
        }
    }
}
