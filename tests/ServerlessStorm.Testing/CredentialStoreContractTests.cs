using System.Text.Json.Nodes;
using ServerlessStorm.Engine.Security;
using Xunit;

namespace ServerlessStorm.Testing;

/// <summary>What every credential store must do, run against each implementation (in memory, Table Storage).</summary>
public abstract class CredentialStoreContractTests
{
    /// <summary>A store no other test uses.</summary>
    protected abstract Task<ICredentialStore> CreateStoreAsync();

    private static CredentialRecord Record(string kind, string hash, string user = "alice", DateTimeOffset? expires = null) => new()
    {
        Kind = kind,
        Id = StormIdsFor(hash),
        Hash = hash,
        User = user,
        CreatedAt = new DateTimeOffset(2026, 12, 2, 10, 0, 0, TimeSpan.Zero).AddSeconds(hash.Length + hash[0]),
        ExpiresAt = expires,
        Metadata = new JsonObject { ["used_by"] = "ci", ["n"] = 2 },
    };

    private static string StormIdsFor(string hash) => ("5f" + hash).PadRight(24, '0')[..24];

    [Fact]
    public async Task Add_ThenFind_ReturnsTheRecordAsStored_ByKindAndHash()
    {
        var store = await CreateStoreAsync();
        var expires = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero);
        var added = await store.AddAsync(Record(CredentialKind.Token, "aa11", expires: expires), CancellationToken.None);

        var found = await store.FindAsync(CredentialKind.Token, "aa11", CancellationToken.None);
        var otherKind = await store.FindAsync(CredentialKind.ApiKey, "aa11", CancellationToken.None);

        Assert.True(added);
        Assert.NotNull(found);
        Assert.Equal("alice", found.User);
        Assert.Equal(expires, found.ExpiresAt);
        Assert.True(found.Enabled);
        Assert.Equal("ci", found.Metadata["used_by"]!.GetValue<string>());
        Assert.Null(otherKind);
    }

    [Fact]
    public async Task Add_WithAHashThatExists_ReturnsFalse_AndKeepsTheFirst()
    {
        var store = await CreateStoreAsync();
        await store.AddAsync(Record(CredentialKind.ApiKey, "bb22", "alice"), CancellationToken.None);

        var again = await store.AddAsync(Record(CredentialKind.ApiKey, "bb22", "mallory"), CancellationToken.None);

        Assert.False(again);
        Assert.Equal("alice", (await store.FindAsync(CredentialKind.ApiKey, "bb22", CancellationToken.None))!.User);
    }

    [Fact]
    public async Task List_ReturnsOneKind_OldestFirst()
    {
        var store = await CreateStoreAsync();
        await store.AddAsync(Record(CredentialKind.ApiKey, "cc333"), CancellationToken.None);
        await store.AddAsync(Record(CredentialKind.ApiKey, "cc3"), CancellationToken.None);
        await store.AddAsync(Record(CredentialKind.Token, "cc33"), CancellationToken.None);

        var keys = await store.ListAsync(CredentialKind.ApiKey, CancellationToken.None);

        Assert.Equal(["cc3", "cc333"], keys.Select(k => k.Hash));
    }

    [Fact]
    public async Task Update_ReplacesAnExistingRecord_AndReportsAMissingOne()
    {
        var store = await CreateStoreAsync();
        var record = Record(CredentialKind.ApiKey, "dd44");
        await store.AddAsync(record, CancellationToken.None);

        var updated = await store.UpdateAsync(record with { Enabled = false }, CancellationToken.None);
        var missing = await store.UpdateAsync(Record(CredentialKind.ApiKey, "dd45"), CancellationToken.None);

        Assert.True(updated);
        Assert.False((await store.FindAsync(CredentialKind.ApiKey, "dd44", CancellationToken.None))!.Enabled);
        Assert.False(missing);
        Assert.Null(await store.FindAsync(CredentialKind.ApiKey, "dd45", CancellationToken.None));
    }

    [Fact]
    public async Task Delete_RemovesTheRecord_AndTellsWhetherThereWasOne()
    {
        var store = await CreateStoreAsync();
        await store.AddAsync(Record(CredentialKind.Token, "ee55"), CancellationToken.None);

        var first = await store.DeleteAsync(CredentialKind.Token, "ee55", CancellationToken.None);
        var second = await store.DeleteAsync(CredentialKind.Token, "ee55", CancellationToken.None);

        Assert.True(first);
        Assert.False(second);
        Assert.Null(await store.FindAsync(CredentialKind.Token, "ee55", CancellationToken.None));
    }

    [Fact]
    public async Task ARecordHandedOut_IsTheCallersOwn()
    {
        var store = await CreateStoreAsync();
        await store.AddAsync(Record(CredentialKind.ApiKey, "ff66"), CancellationToken.None);

        (await store.FindAsync(CredentialKind.ApiKey, "ff66", CancellationToken.None))!.Metadata["used_by"] = "changed";

        Assert.Equal("ci", (await store.FindAsync(CredentialKind.ApiKey, "ff66", CancellationToken.None))!.Metadata["used_by"]!.GetValue<string>());
    }
}
