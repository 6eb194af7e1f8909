using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Tests;

public class TimerScheduleTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 24, 10, 0, 0, TimeSpan.Zero);

    private static List<DateTimeOffset> Fire(string type, string parameters, TimeSpan window) =>
        [.. TimerSchedule.Parse(type, (JsonObject)JsonNode.Parse(parameters)!).Occurrences(Start, Start + window)];

    [Fact]
    public void Interval_FiresOnEpochMultiples()
    {
        var times = Fire(CoreTriggers.IntervalTimer, """{"unit": "seconds", "delta": 20}""", TimeSpan.FromMinutes(1));

        Assert.Equal([Start.AddSeconds(20), Start.AddSeconds(40), Start.AddSeconds(60)], times);
    }

    [Fact]
    public void Cron_LowerFieldsDefaultToZero_AsApschedulerDoes()
    {
        var times = Fire(CoreTriggers.CronTimer, """{"hour": 11}""", TimeSpan.FromDays(1));

        Assert.Equal([Start.AddHours(1)], times);
    }

    [Fact]
    public void Cron_DayOfWeekCountsFromMonday()
    {
        // 2026-11-24 is a Tuesday; APScheduler's day_of_week 1 is Tuesday.
        var times = Fire(CoreTriggers.CronTimer, """{"day_of_week": 1, "hour": 12, "minute": 30}""", TimeSpan.FromDays(7));

        Assert.Equal([new DateTimeOffset(2026, 11, 24, 12, 30, 0, TimeSpan.Zero)], times);
    }

    [Fact]
    public void DateTimer_FiresOnceInItsZone()
    {
        var times = Fire(CoreTriggers.DateTimer, """{"date": "2026-11-24 11:30:00", "timezone": "Europe/Paris"}""", TimeSpan.FromDays(1));

        Assert.Equal([new DateTimeOffset(2026, 11, 24, 10, 30, 0, TimeSpan.Zero)], times);
    }

    [Theory]
    [InlineData(CoreTriggers.IntervalTimer, """{"unit": "seconds"}""", "delta")]
    [InlineData(CoreTriggers.CronTimer, """{"minute": "61"}""", "not valid")]
    [InlineData(CoreTriggers.CronTimer, """{"hour": 1, "timezone": "Mars/Olympus"}""", "unknown time zone")]
    [InlineData(CoreTriggers.DateTimer, """{"date": "tomorrow"}""", "not a date")]
    public void BadParameters_SayWhatIsWrong(string type, string parameters, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => TimerSchedule.Parse(type, (JsonObject)JsonNode.Parse(parameters)!));
        Assert.Contains(message, error.Message);
    }
}
