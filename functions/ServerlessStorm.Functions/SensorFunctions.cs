using Microsoft.Azure.Functions.Worker;
using ServerlessStorm.Engine.Sensors;

namespace ServerlessStorm.Functions;

/// <summary>
/// The packs' polling sensors in the Function app: every minute one invocation (a timer function runs on one
/// instance at a time) polls the sensors whose poll_interval has passed, each claimed in the sensors table so no
/// other host polls it meanwhile, and ends when those polls end. An app without enabled sensors returns at once.
/// A poll_interval under a minute is polled every minute here: a finer schedule would wake every app, sensors or
/// not, four times as often (see docs/deployment.md, "Timers and what they cost"). Long-running sensors do not run in the Function app
/// (<see cref="SensorScheduler.LongRunningInFunctions"/>): their status says so.
/// </summary>
public sealed class SensorFunctions(SensorScheduler sensors)
{
    public const string Schedule = "0 * * * * *";

    [Function("SensorPolls")]
    public Task SensorPollsAsync([TimerTrigger(Schedule)] TimerInfo timer, CancellationToken cancellationToken) =>
        sensors.HasSensors ? sensors.RunDueAsync(cancellationToken) : Task.CompletedTask;
}
