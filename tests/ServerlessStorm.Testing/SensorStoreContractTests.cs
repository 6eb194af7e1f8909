using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Sensors;
using Xunit;

namespace ServerlessStorm.Testing;

/// <summary>What every sensor store must do, run against each implementation (in memory, Table Storage).</summary>
public abstract class SensorStoreContractTests
{
    /// <summary>A store no other test uses.</summary>
    protected abstract Task<ISensorStore> CreateStoreAsync();

    private static readonly DateTimeOffset At = new(2026, 12, 3, 8, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Write_ThenGet_ReturnsTheRecordAsStored_WithItsStateAndAVersion()
    {
        var store = await CreateStoreAsync();
        var written = await store.TryWriteAsync(new SensorRecord("p.S")
        {
            Status = SensorStates.Failing,
            LastPoll = At,
            NextPoll = At.AddSeconds(30),
            LastError = "boom",
            LastErrorAt = At,
            ConsecutiveFailures = 2,
            Polls = 7,
            State = new JsonObject { ["seen"] = new JsonArray("a", "b"), ["n"] = 3 },
            Holder = "host-1",
            LeaseUntil = At.AddMinutes(5),
            LongRunning = true,
            LongRunningCode = "abc123",
        }, CancellationToken.None);

        var read = await store.GetAsync("p.S", CancellationToken.None);

        Assert.NotNull(written?.Version);
        Assert.NotNull(read);
        Assert.Equal(written!.Version, read!.Version);
        Assert.Equal((SensorStates.Failing, At, At.AddSeconds(30), "boom", 2, 7L, "host-1", At.AddMinutes(5)),
            (read.Status, read.LastPoll, read.NextPoll, read.LastError, read.ConsecutiveFailures, read.Polls, read.Holder, read.LeaseUntil));
        Assert.True(JsonNode.DeepEquals(new JsonObject { ["seen"] = new JsonArray("a", "b"), ["n"] = 3 }, read.State));
        Assert.Equal((true, "abc123"), (read.LongRunning, read.LongRunningCode));
        Assert.Null(await store.GetAsync("p.Other", CancellationToken.None));
    }

    [Fact]
    public async Task AWriteFromAStaleRead_OrASecondFirstWrite_IsRefused_SoOnlyOneClaimWins()
    {
        var store = await CreateStoreAsync();
        var first = await store.TryWriteAsync(new SensorRecord("p.S") { Holder = "a" }, CancellationToken.None);
        var secondInsert = await store.TryWriteAsync(new SensorRecord("p.S") { Holder = "b" }, CancellationToken.None);
        var fromFirst = await store.TryWriteAsync(first! with { Holder = "a2" }, CancellationToken.None);
        var stale = await store.TryWriteAsync(first! with { Holder = "c" }, CancellationToken.None);

        Assert.NotNull(first);
        Assert.Null(secondInsert);
        Assert.NotNull(fromFirst);
        Assert.Null(stale);
        Assert.Equal("a2", (await store.GetAsync("p.S", CancellationToken.None))!.Holder);
    }

    [Fact]
    public async Task RacingClaims_OnlyOneSucceeds()
    {
        var store = await CreateStoreAsync();
        var record = await store.TryWriteAsync(new SensorRecord("p.S"), CancellationToken.None);

        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => store.TryWriteAsync(record! with { Holder = $"h{i}" }, CancellationToken.None)));

        Assert.Single(claims, c => c is not null);
    }

    [Fact]
    public async Task List_ReturnsEverySensor()
    {
        var store = await CreateStoreAsync();
        await store.TryWriteAsync(new SensorRecord("p.A"), CancellationToken.None);
        await store.TryWriteAsync(new SensorRecord("p.B") { Status = SensorStates.Running }, CancellationToken.None);

        var all = await store.ListAsync(CancellationToken.None);

        Assert.Equal(["p.A", "p.B"], all.Select(r => r.Ref).Order(StringComparer.Ordinal));
    }
}
