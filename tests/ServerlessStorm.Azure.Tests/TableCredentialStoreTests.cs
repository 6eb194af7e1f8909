using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Security;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

[Collection(AzuriteCollection.Name)]
public sealed class TableCredentialStoreContractTests(AzuriteFixture azurite) : CredentialStoreContractTests
{
    protected override Task<ICredentialStore> CreateStoreAsync() => Task.FromResult<ICredentialStore>(new TableCredentialStore(Options.Create(azurite.NewStorageOptions())));
}

[Collection(AzuriteCollection.Name)]
public sealed class TableCredentialStoreTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task ApiKeysAndTokens_AreNowhereInStorage_OnlyTheirHashes()
    {
        var options = azurite.NewStorageOptions();
        var service = new CredentialService(new TableCredentialStore(Options.Create(options)), Options.Create(new AuthOptions()), TimeProvider.System);

        var (_, key) = await service.CreateApiKeyAsync("alice", null, CancellationToken.None);
        var (_, token) = await service.IssueTokenAsync("alice", null, CancellationToken.None);

        // The scan reads every table, blob and queue of the account (other tests' too): none holds either secret.
        Assert.Empty((await StorageScan.FindAsync(options.ConnectionString, key)).Hits);
        Assert.Empty((await StorageScan.FindAsync(options.ConnectionString, token)).Hits);
        Assert.NotEmpty((await StorageScan.FindAsync(options.ConnectionString, CredentialService.Hash(CredentialKind.ApiKey, key))).Hits);
        Assert.NotNull(await service.FindAsync(CredentialKind.ApiKey, key, CancellationToken.None));
    }
}
