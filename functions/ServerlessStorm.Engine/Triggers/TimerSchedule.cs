using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cronos;
using ServerlessStorm.Engine.Json;

namespace ServerlessStorm.Engine.Triggers;

/// <summary>
/// When a timer trigger fires, from its StackStorm parameters: IntervalTimer (unit, delta), CronTimer (APScheduler's
/// cron fields) and DateTimer (date, timezone). Interval timers count from the Unix epoch, so every host computes the
/// same firing times and the same trigger-instance ids.
/// </summary>
public abstract class TimerSchedule
{
    public abstract IEnumerable<DateTimeOffset> Occurrences(DateTimeOffset afterExclusive, DateTimeOffset upToInclusive);

    /// <summary>The first occurrence after <paramref name="afterExclusive"/>; null when there is none (a date timer that passed).</summary>
    public abstract DateTimeOffset? NextAfter(DateTimeOffset afterExclusive);

    /// <summary>Builds the schedule; throws <see cref="ArgumentException"/> naming the bad parameter.</summary>
    public static TimerSchedule Parse(string triggerType, JsonObject parameters) => triggerType switch
    {
        CoreTriggers.IntervalTimer => Interval.From(parameters),
        CoreTriggers.CronTimer => Cron.From(parameters),
        CoreTriggers.DateTimer => OneShot.From(parameters),
        _ => throw new ArgumentException($"'{triggerType}' is not a timer trigger type"),
    };

    private static string? Text(JsonObject parameters, string name) => parameters[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var other => other.ToJsonString(),
    };

    private static TimeZoneInfo Zone(JsonObject parameters)
    {
        var name = Text(parameters, "timezone") ?? "UTC";
        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(name);
        }
        catch (TimeZoneNotFoundException)
        {
            throw new ArgumentException($"timezone: unknown time zone '{name}'");
        }
    }

    private sealed class Interval(TimeSpan period) : TimerSchedule
    {
        public static Interval From(JsonObject parameters)
        {
            var unit = Text(parameters, "unit") ?? throw new ArgumentException("unit: required (seconds, minutes, hours, days or weeks)");
            if (!JsonNumbers.TryGetInt64(parameters["delta"], out var delta) || delta <= 0)
            {
                throw new ArgumentException("delta: required, a positive integer");
            }

            var period = unit switch
            {
                "seconds" => TimeSpan.FromSeconds(delta),
                "minutes" => TimeSpan.FromMinutes(delta),
                "hours" => TimeSpan.FromHours(delta),
                "days" => TimeSpan.FromDays(delta),
                "weeks" => TimeSpan.FromDays(7 * delta),
                _ => throw new ArgumentException($"unit: '{unit}' is not one of seconds, minutes, hours, days, weeks"),
            };
            return new Interval(period);
        }

        public override IEnumerable<DateTimeOffset> Occurrences(DateTimeOffset afterExclusive, DateTimeOffset upToInclusive)
        {
            for (var next = NextAfter(afterExclusive)!.Value; next <= upToInclusive; next += period)
            {
                yield return next;
            }
        }

        // Occurrences are whole periods since the Unix epoch, so every host computes the same ones.
        public override DateTimeOffset? NextAfter(DateTimeOffset afterExclusive) =>
            new DateTimeOffset(((afterExclusive.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / period.Ticks + 1) * period.Ticks + DateTimeOffset.UnixEpoch.UtcTicks, TimeSpan.Zero);
    }

    private sealed class Cron(CronExpression expression, TimeZoneInfo zone) : TimerSchedule
    {
        // APScheduler's cron fields, least significant first, with the cron field each maps to.
        private static readonly string[] Fields = ["second", "minute", "hour", "day", "month", "day_of_week"];

        public static Cron From(JsonObject parameters)
        {
            foreach (var unsupported in new[] { "year", "week" })
            {
                if (parameters[unsupported] is not null)
                {
                    throw new ArgumentException($"{unsupported}: not supported by this cron timer");
                }
            }

            // APScheduler: fields below the most significant one given default to their minimum, fields above to '*'.
            var mostSignificant = Array.FindLastIndex(Fields, f => parameters[f] is not null);
            var parts = Fields.Select((field, index) =>
            {
                var value = Text(parameters, field);
                if (value is not null)
                {
                    return field == "day_of_week" ? DayOfWeek(value) : value;
                }

                return index < mostSignificant && field is "second" or "minute" or "hour" ? "0" : "*";
            }).ToArray();
            var text = string.Join(' ', parts);
            try
            {
                return new Cron(CronExpression.Parse(text, CronFormat.IncludeSeconds), Zone(parameters));
            }
            catch (CronFormatException ex)
            {
                throw new ArgumentException($"the cron fields make '{text}', which is not valid: {ex.Message}");
            }
        }

        public override IEnumerable<DateTimeOffset> Occurrences(DateTimeOffset afterExclusive, DateTimeOffset upToInclusive) =>
            expression.GetOccurrences(afterExclusive, upToInclusive, zone, fromInclusive: false, toInclusive: true);

        public override DateTimeOffset? NextAfter(DateTimeOffset afterExclusive) => expression.GetNextOccurrence(afterExclusive, zone, inclusive: false);

        // APScheduler numbers days from Monday = 0; cron from Sunday = 0. Names pass through.
        private static string DayOfWeek(string value) => string.Concat(value.Select(c =>
            c is >= '0' and <= '6' ? ((c - '0' + 1) % 7).ToString(CultureInfo.InvariantCulture) : c.ToString()));
    }

    private sealed class OneShot(DateTimeOffset at) : TimerSchedule
    {
        public static OneShot From(JsonObject parameters)
        {
            var text = Text(parameters, "date") ?? throw new ArgumentException("date: required, e.g. '2026-12-01 09:00:00'");
            if (!DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var local))
            {
                throw new ArgumentException($"date: '{text}' is not a date and time");
            }

            var zone = Zone(parameters);
            return new OneShot(new DateTimeOffset(local, zone.GetUtcOffset(local)));
        }

        public override IEnumerable<DateTimeOffset> Occurrences(DateTimeOffset afterExclusive, DateTimeOffset upToInclusive) =>
            at > afterExclusive && at <= upToInclusive ? [at] : [];

        public override DateTimeOffset? NextAfter(DateTimeOffset afterExclusive) => at > afterExclusive ? at : null;
    }
}
