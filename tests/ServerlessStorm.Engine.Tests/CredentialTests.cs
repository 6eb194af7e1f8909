using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Engine.Tests;

public sealed class InMemoryCredentialStoreContractTests : CredentialStoreContractTests
{
    protected override Task<ICredentialStore> CreateStoreAsync() => Task.FromResult<ICredentialStore>(new InMemoryCredentialStore());
}

/// <summary>API keys and tokens: shown once, stored hashed, refused once disabled, expired or revoked.</summary>
public sealed class CredentialTests
{
    private readonly ManualTimeProvider _time = new(new DateTimeOffset(2026, 12, 2, 12, 0, 0, TimeSpan.Zero));
    private readonly InMemoryCredentialStore _store = new();

    private CredentialService Service(AuthOptions? options = null) => new(_store, Options.Create(options ?? new AuthOptions()), _time);

    [Fact]
    public async Task AnApiKey_HasStackStormsShape_AndIsStoredOnlyAsStackStormsHash()
    {
        var (record, key) = await Service().CreateApiKeyAsync("alice", null, CancellationToken.None);

        var stored = Assert.Single(await _store.ListAsync(CredentialKind.ApiKey, CancellationToken.None));
        Assert.Matches("^[A-Za-z0-9]{86}$", key);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA512.HashData(Encoding.UTF8.GetBytes("saltnpepper" + key))), stored.Hash);
        Assert.DoesNotContain(key, System.Text.Json.JsonSerializer.Serialize(stored));
        Assert.Matches("^[0-9a-f]{24}$", record.Id);
    }

    [Fact]
    public async Task AToken_LastsItsTtl_ThenIsRefused()
    {
        var service = Service();
        var (_, token) = await service.IssueTokenAsync("alice", TimeSpan.FromMinutes(5), CancellationToken.None);

        var fresh = service.IsUsable((await service.FindAsync(CredentialKind.Token, token, CancellationToken.None))!);
        _time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromTicks(1));
        var lastMoment = service.IsUsable((await service.FindAsync(CredentialKind.Token, token, CancellationToken.None))!);
        _time.Advance(TimeSpan.FromTicks(1));
        var expired = service.IsUsable((await service.FindAsync(CredentialKind.Token, token, CancellationToken.None))!);

        Assert.Matches("^[0-9a-f]{32}$", token);
        Assert.True(fresh);
        Assert.True(lastMoment);
        Assert.False(expired);
    }

    [Fact]
    public async Task ATokenLongerThanAllowed_IsRefusedWithStackStormsMessage()
    {
        var error = await Assert.ThrowsAsync<CredentialException>(() => Service().IssueTokenAsync("alice", TimeSpan.FromDays(2), CancellationToken.None));

        Assert.Equal(400, error.Status);
        Assert.Equal("TTL specified 172800 is greater than max allowed 86400.", error.Message);
    }

    [Fact]
    public async Task ARevokedToken_IsGone_EvenFromTheCache()
    {
        var service = Service();
        var (_, token) = await service.IssueTokenAsync("alice", null, CancellationToken.None);
        await service.FindAsync(CredentialKind.Token, token, CancellationToken.None);

        var revoked = await service.RevokeTokenAsync(token, CancellationToken.None);

        Assert.True(revoked);
        Assert.Null(await service.FindAsync(CredentialKind.Token, token, CancellationToken.None));
    }

    [Fact]
    public async Task AKeyDisabledOnAnotherInstance_StopsWorkingHere_WithinTheCacheTime()
    {
        var here = Service(new AuthOptions { CacheFor = TimeSpan.FromSeconds(10) });
        var elsewhere = Service();
        var (record, key) = await here.CreateApiKeyAsync("alice", null, CancellationToken.None);
        await here.FindAsync(CredentialKind.ApiKey, key, CancellationToken.None);

        await elsewhere.SetApiKeyEnabledAsync(record.Id, false, CancellationToken.None);
        var cached = here.IsUsable((await here.FindAsync(CredentialKind.ApiKey, key, CancellationToken.None))!);
        _time.Advance(TimeSpan.FromSeconds(10));
        var later = here.IsUsable((await here.FindAsync(CredentialKind.ApiKey, key, CancellationToken.None))!);

        Assert.True(cached);
        Assert.False(later);
    }
}

/// <summary>A credential store that stops answering (a storage outage) until released.</summary>
public sealed class CredentialsWhileTheStoreHangsTests
{
    private readonly ManualTimeProvider _time = new(new DateTimeOffset(2026, 12, 2, 12, 0, 0, TimeSpan.Zero));
    private readonly HangingStore _store = new();

    [Fact]
    public async Task AVerifiedKey_GoesOnWorkingWhileTheStoreHangs_ForUpToStaleFor_ThenWaitsForTheStore()
    {
        var service = new CredentialService(_store, Options.Create(new AuthOptions { CacheFor = TimeSpan.FromSeconds(10), StaleFor = TimeSpan.FromMinutes(5) }), _time);
        var (_, key) = await service.CreateApiKeyAsync("alice", null, CancellationToken.None);
        Assert.NotNull(await service.FindAsync(CredentialKind.ApiKey, key, CancellationToken.None));

        _store.Hang();
        _time.Advance(TimeSpan.FromSeconds(30));
        var whileHung = service.FindAsync(CredentialKind.ApiKey, key, CancellationToken.None);
        Assert.True(whileHung.IsCompletedSuccessfully, "a request waited for a hung store although the key was verified 30 s ago");
        Assert.Equal("alice", (await whileHung)!.User);

        _time.Advance(TimeSpan.FromMinutes(5));
        var tooOld = service.FindAsync(CredentialKind.ApiKey, key, CancellationToken.None);
        Assert.False(tooOld.IsCompleted, "a verdict older than StaleFor was trusted without the store");
        _store.Release();
        Assert.Equal("alice", (await tooOld)!.User);
    }

    private sealed class HangingStore : ICredentialStore
    {
        private readonly InMemoryCredentialStore _inner = new();
        private TaskCompletionSource _open = CreateOpen();

        public void Hang() => _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _open.TrySetResult();

        public Task<bool> AddAsync(CredentialRecord record, CancellationToken cancellationToken) => _inner.AddAsync(record, cancellationToken);

        public async Task<CredentialRecord?> FindAsync(string kind, string hash, CancellationToken cancellationToken)
        {
            await _open.Task.WaitAsync(cancellationToken);
            return await _inner.FindAsync(kind, hash, cancellationToken);
        }

        public Task<IReadOnlyList<CredentialRecord>> ListAsync(string kind, CancellationToken cancellationToken) => _inner.ListAsync(kind, cancellationToken);

        public Task<bool> UpdateAsync(CredentialRecord record, CancellationToken cancellationToken) => _inner.UpdateAsync(record, cancellationToken);

        public Task<bool> DeleteAsync(string kind, string hash, CancellationToken cancellationToken) => _inner.DeleteAsync(kind, hash, cancellationToken);

        private static TaskCompletionSource CreateOpen()
        {
            var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            open.SetResult();
            return open;
        }
    }
}

/// <summary>The htpasswd user backend, checked against hashes made by Apache's own htpasswd and by openssl.</summary>
public sealed class HtpasswdUserBackendTests : IDisposable
{
    // Made with apache2-utils 2.4 htpasswd: -B (bcrypt), -m (apr1), -s (SHA), -p (plain), -d (crypt).
    private const string File = """
        alice:$2y$05$AynAZ69TZCvwomG47rwdJuJJr16.2itUPRFMV1dx6Z58tVLTx5u2S
        bob:$apr1$/hpwbhWB$6PhFmh8HFLrogroSldKfU.
        # a comment
        carol:{SHA}FeRLochckVYomzUULbJ5htyArAE=
        dave:plain-pw4
        erin:J9BkZZhgRZdCo
        """;

    private readonly string _path = Path.GetTempFileName();

    public HtpasswdUserBackendTests() => System.IO.File.WriteAllText(_path, File);

    public void Dispose() => System.IO.File.Delete(_path);

    private HtpasswdUserBackend Backend(ListLogger? logger = null) =>
        new(Options.Create(new AuthOptions { HtpasswdFile = _path }), logger ?? (Microsoft.Extensions.Logging.ILogger<HtpasswdUserBackend>)NullLogger<HtpasswdUserBackend>.Instance);

    [Theory]
    [InlineData("alice", "Bcrypt-pw1")]
    [InlineData("bob", "Md5-pw2")]
    [InlineData("carol", "Sha-pw3")]
    public async Task HashesHtpasswdMakes_AcceptTheirPassword_AndNoOther(string user, string password)
    {
        var backend = Backend();

        Assert.True(await backend.AuthenticateAsync(user, password, CancellationToken.None));
        Assert.False(await backend.AuthenticateAsync(user, password + "x", CancellationToken.None));
        Assert.False(await backend.AuthenticateAsync(user, "", CancellationToken.None));
    }

    [Theory]
    [InlineData("dave", "plain-pw4")]
    [InlineData("erin", "cryptpw")]
    [InlineData("nobody", "anything")]
    public async Task PlainTextAndCryptLines_AndUnknownUsers_LetNobodyIn(string user, string password) =>
        Assert.False(await Backend().AuthenticateAsync(user, password, CancellationToken.None));

    [Fact]
    public async Task UnusableLines_AreLogged_WithFileLineAndUser_ButNoHash()
    {
        var logger = new ListLogger();
        await Backend(logger).AuthenticateAsync("alice", "Bcrypt-pw1", CancellationToken.None);

        Assert.Equal(2, logger.Lines.Count);
        Assert.Contains(logger.Lines, l => l.Contains("line 5 (user dave)", StringComparison.Ordinal) && l.Contains("htpasswd -B", StringComparison.Ordinal));
        Assert.DoesNotContain(logger.Lines, l => l.Contains("plain-pw4", StringComparison.Ordinal) || l.Contains("J9BkZZ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AUserAddedToTheFile_CanLogInWithoutARestart()
    {
        var backend = Backend();
        Assert.False(await backend.AuthenticateAsync("frank", "new-pw", CancellationToken.None));

        await System.IO.File.AppendAllTextAsync(_path, $"\nfrank:{BCrypt.Net.BCrypt.HashPassword("new-pw", 4)}\n");

        Assert.True(await backend.AuthenticateAsync("frank", "new-pw", CancellationToken.None));
    }

    [Theory]
    [InlineData("$2")]
    [InlineData("$2y$05$short")]
    [InlineData("$2y$99$AynAZ69TZCvwomG47rwdJuJJr16.2itUPRFMV1dx6Z58tVLTx5u2S")]
    [InlineData("$apr1$")]
    public void AMalformedHash_LetsNobodyIn_AndThrowsNothing(string hash) =>
        Assert.False(HtpasswdUserBackend.Verify("anything", hash));

    [Fact]
    public void Apr1_MatchesOpenssl() =>
        Assert.Equal("$apr1$abcdefgh$mXVkaaWb3NagtB1oyQ05z/", HtpasswdUserBackend.Apr1("Md5-pw2", "abcdefgh")); // openssl passwd -apr1 -salt abcdefgh Md5-pw2

    public sealed class ListLogger : Microsoft.Extensions.Logging.ILogger<HtpasswdUserBackend>
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add(formatter(state, exception));
    }
}
