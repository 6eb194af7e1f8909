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
}
