using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;

namespace ServerlessStorm.Engine.Sensors;

/// <summary>
/// <c>storm serve</c>'s sensor loop: every <see cref="Tick"/> it starts the polls that are due (a slow sensor does
/// not hold the others back), and it supervises the long-running sensors when <see cref="SensorOptions.RunLongRunning"/>.
/// </summary>
public sealed class SensorWorker(SensorScheduler scheduler, IOptions<SensorOptions> options, TimeProvider time, ILogger<SensorWorker> logger) : BackgroundService
{
    public static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!scheduler.HasSensors)
        {
            return;
        }

        var supervising = options.Value.RunLongRunning
            ? Task.Run(() => scheduler.SuperviseLongRunningAsync(TimeSpan.FromSeconds(5), stoppingToken), CancellationToken.None)
            : Task.CompletedTask;
        var polls = new List<Task>();
        using var ticker = new PeriodicTimer(Tick, time);
        try
        {
            do
            {
                try
                {
                    polls.RemoveAll(t => t.IsCompleted);
                    polls.AddRange(scheduler.StartDue(stoppingToken));
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.SensorRoundFailed(ex);
                }
            }
            while (await ticker.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(polls);
        await supervising;
    }
}
