using Azure.Core;
using ServerlessStorm.Azure;

namespace ServerlessStorm.Azure.Tests;

/// <summary>The storage clients every host builds: by endpoints and an Entra credential in Azure, by connection string for Azurite.</summary>
public sealed class StorageClientsTests
{
    [Fact]
    public void Names_AllComeFromThePrefix_AsTheStoresHaveAlwaysNamedThem()
    {
        var names = new AzureStorageOptions { Prefix = "Ops-Prod" }.Names;

        Assert.Equal(("OpsProdAudit", "OpsProdCredentials", "OpsProdWorkers", "OpsProdConcurrencySlots", "OpsProdExecutionOutput", "OpsProdKeyValues"),
            (names.AuditTable, names.CredentialsTable, names.WorkersTable, names.ConcurrencySlotsTable, names.ExecutionOutputTable, names.KeyValuesTable));
        Assert.Equal(("opsprod-audit-payloads", "ops-prod-bus-payloads"), (names.AuditPayloadsContainer, names.BusPayloadsContainer));
        Assert.Equal(("ops-prod-trigger-instances", "ops-prod-trigger-instances-poison"), (names.Queue("trigger-instances"), names.PoisonQueue("trigger-instances")));
    }

    [Fact]
    public async Task WithEndpoints_TheClientsUseThemAndAskTheCredentialForAStorageToken()
    {
        var credential = new RecordingCredential();
        var options = new AzureStorageOptions
        {
            TableServiceUri = new Uri("https://stormprod.table.core.invalid/"), // never resolves: nothing is sent anywhere
            BlobServiceUri = new Uri("https://stormprod.blob.core.windows.net/"),
            QueueServiceUri = new Uri("https://stormprod.queue.core.windows.net/"),
        };

        var clients = new StorageClients(options, credential);

        Assert.True(options.UsesEndpoints);
        Assert.False(options.IsEmulator);
        Assert.Equal(("stormprod", "stormprod"), (clients.Blobs.AccountName, clients.Queues.AccountName));
        Assert.Equal(new Uri("https://stormprod.queue.core.windows.net/"), clients.Queues.Uri);

        // A request asks the credential for a token first (the endpoint itself does not exist).
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        credential.Asked.Task.ContinueWith(_ => stop.Cancel(), TaskScheduler.Default).Ignore();
        await Assert.ThrowsAnyAsync<Exception>(() => clients.Tables.GetTableClient("x").CreateIfNotExistsAsync(stop.Token));
        Assert.Equal(["https://storage.azure.com/.default"], await credential.Asked.Task);
    }

    [Fact]
    public void WithSomeEndpointsMissing_TheErrorNamesTheSetting()
    {
        var error = Assert.Throws<InvalidOperationException>(() => new StorageClients(new AzureStorageOptions { TableServiceUri = new Uri("https://a.table.core.windows.net/") }, new RecordingCredential()));
        Assert.StartsWith("Storage:BlobServiceUri is not set", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheCredential_IsTheNamedManagedIdentity_AndOnePerProcess()
    {
        const string clientId = "00000000-0000-0000-0000-000000000001";
        Assert.IsType<global::Azure.Identity.ManagedIdentityCredential>(AzureIdentity.Credential("managedidentity", clientId));
        Assert.Same(AzureIdentity.Credential("managedidentity", clientId), AzureIdentity.Credential("managedidentity", clientId));
    }

    [Fact]
    public async Task ServiceBus_WithItsNamespaceNamed_ConnectsToItByIdentity_ElseByConnectionString()
    {
        // (Its token is asked for only once an AMQP connection is open, which nothing here can offer.)
        await using var byIdentity = new ServerlessStorm.Azure.Messaging.ServiceBusOptions { FullyQualifiedNamespace = "stormprod.servicebus.windows.net" }.CreateClient(new RecordingCredential());
        await using var byKey = new ServerlessStorm.Azure.Messaging.ServiceBusOptions
        {
            ConnectionString = "Endpoint=sb://keyed.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0",
        }.CreateClient();

        Assert.Equal(("stormprod.servicebus.windows.net", "keyed.servicebus.windows.net"), (byIdentity.FullyQualifiedNamespace, byKey.FullyQualifiedNamespace));
    }

    private sealed class RecordingCredential : TokenCredential
    {
        public TaskCompletionSource<string[]> Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            Asked.TrySetResult(requestContext.Scopes);
            return new AccessToken("not-a-real-token", DateTimeOffset.UtcNow.AddHours(1));
        }

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            new(GetToken(requestContext, cancellationToken));
    }
}

internal static class TaskExtensions
{
    public static void Ignore(this Task task) => _ = task;
}
