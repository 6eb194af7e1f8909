using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Triggers;

/// <summary>
/// The timer sensor: on each tick, fires the timer triggers of the enabled rules that fell due since the last tick.
/// A trigger instance's id is the timer and its firing time, so two hosts ticking at once produce one instance.
/// </summary>
public sealed class TimerSensor
{
    /// <summary>A host that was down does not replay more than this much missed time on its next tick.</summary>
    public static readonly TimeSpan MaxCatchUp = TimeSpan.FromMinutes(5);

    private readonly TriggerDispatcher _dispatcher;
    private readonly List<(string Type, JsonObject Parameters, TimerSchedule Schedule, string Key)> _timers = [];

    public TimerSensor(PackCatalog catalog, TriggerDispatcher dispatcher)
    {
        _dispatcher = dispatcher;
        foreach (var rule in catalog.Rules.Where(r => r.Enabled && CoreTriggers.Timers.Contains(r.TriggerType)))
        {
            if (_timers.Any(t => t.Type == rule.TriggerType && JsonNode.DeepEquals(t.Parameters, rule.TriggerParameters)))
            {
                continue;
            }

            var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(rule.TriggerType + rule.TriggerParameters.ToJsonString())).AsSpan(0, 8));
            _timers.Add((rule.TriggerType, rule.TriggerParameters, TimerSchedule.Parse(rule.TriggerType, rule.TriggerParameters), key));
        }
    }

    public bool HasTimers => _timers.Count > 0;

    public IReadOnlyList<TriggerInstance> Due(DateTimeOffset afterExclusive, DateTimeOffset upToInclusive)
    {
        if (upToInclusive - afterExclusive > MaxCatchUp)
        {
            afterExclusive = upToInclusive - MaxCatchUp;
        }

        var due = new List<TriggerInstance>();
        foreach (var (type, parameters, schedule, key) in _timers)
        {
            foreach (var at in schedule.Occurrences(afterExclusive, upToInclusive))
            {
                var id = $"timer-{key}-{at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}";
                var payload = new JsonObject { ["executed_at"] = at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture), ["schedule"] = parameters.DeepClone() };
                due.Add(new TriggerInstance(id, type, (JsonObject)parameters.DeepClone(), payload, at, id));
            }
        }

        return due;
    }

    public async Task<int> FireAsync(DateTimeOffset afterExclusive, DateTimeOffset upToInclusive, CancellationToken cancellationToken)
    {
        var due = Due(afterExclusive, upToInclusive);
        foreach (var instance in due)
        {
            await _dispatcher.DispatchAsync(instance, cancellationToken);
        }

        return due.Count;
    }
}
