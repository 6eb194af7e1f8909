using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Sensors;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Hosting;

/// <summary>
/// The timers queue carries what is due later: timers' occurrences and, where polls are ticks (the Function app),
/// sensors' polls. Every host that consumes the queue hands each message to its own by its type, so a host sharing
/// the queue with another (storm serve beside the app) handles either.
/// </summary>
public sealed class TimersQueueHandler(TimerSensor timers, SensorScheduler sensors)
{
    public Task HandleAsync(BusMessage message, CancellationToken cancellationToken) =>
        StormEvents.TypeOf(message) == StormEvents.SensorTickType
            ? sensors.HandleTickAsync(message, cancellationToken)
            : timers.HandleTickAsync(message, cancellationToken);

    /// <summary>
    /// Publishes every timer's next occurrence and every sensor's next poll (a host's start, and hourly to mend a
    /// broken chain), each on its own: one failing does not leave the other unarmed.
    /// </summary>
    public async Task ArmAsync(CancellationToken cancellationToken)
    {
        var both = new[] { timers.ScheduleAsync(cancellationToken), sensors.ArmAsync(cancellationToken) };
        try
        {
            await Task.WhenAll(both);
        }
        catch when (both.Count(t => t.IsFaulted) > 1)
        {
            throw new AggregateException(both.Where(t => t.IsFaulted).SelectMany(t => t.Exception!.InnerExceptions));
        }
    }
}
