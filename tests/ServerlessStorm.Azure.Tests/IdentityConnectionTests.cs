using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Datastore;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Azure.Tests;

/// <summary>
/// An Azurite that takes only bearer tokens (HTTPS, <c>--oauth basic</c>: it checks each token's issuer, audience and
/// lifetime, not its signature), so the clients built from endpoints and a credential are exercised for real.
/// </summary>
public sealed class AzuriteOAuthFixture : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "storm-tests-azurite-oauth-" + Guid.NewGuid().ToString("N")[..8]);
    private AzuriteLauncher? _launcher;
    private string _thumbprint = "";

    public AzuriteEndpoints Endpoints => _launcher!.Endpoints;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        _thumbprint = certificate.Thumbprint;
        var certFile = Path.Combine(_directory, "cert.pem");
        var keyFile = Path.Combine(_directory, "key.pem");
        await File.WriteAllTextAsync(certFile, certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());

        _launcher = await AzuriteFixture.StartOnFreePortsAsync(Path.Combine(_directory, "data"), ["--oauth", "basic", "--cert", certFile, "--key", keyFile]);
    }

    /// <summary>Storage settings by endpoints and a credential, as the Function app has them in Azure.</summary>
    public AzureStorageOptions IdentityOptions(TokenCredential credential) => new()
    {
        BlobServiceUri = new Uri($"https://127.0.0.1:{Endpoints.BlobPort}/devstoreaccount1"),
        QueueServiceUri = new Uri($"https://127.0.0.1:{Endpoints.QueuePort}/devstoreaccount1"),
        TableServiceUri = new Uri($"https://127.0.0.1:{Endpoints.TablePort}/devstoreaccount1"),
        Prefix = $"id{Random.Shared.Next(100000, 999999)}",
        TokenCredential = credential,
        // This fixture's own certificate, and no other, is trusted.
        Transport = new HttpClientTransport(new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, presented, _, _) => presented?.Thumbprint == _thumbprint,
        }),
    };

    public async Task DisposeAsync()
    {
        if (_launcher is not null)
        {
            await _launcher.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// A stand-in for the managed identity: tokens for the audience asked for, with an Entra ID issuer and a lifetime,
/// unsigned (the emulator checks no signature). Records each scope asked for.
/// </summary>
public sealed class UnsignedTokenCredential(string? audience = null) : TokenCredential
{
    public List<string> Scopes { get; } = [];

    public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
    {
        var scope = requestContext.Scopes.Single();
        lock (Scopes)
        {
            Scopes.Add(scope);
        }

        var now = DateTimeOffset.UtcNow;
        static string Part(object value) => Base64Url(JsonSerializer.SerializeToUtf8Bytes(value));
        var claims = new Dictionary<string, object>
        {
            ["aud"] = audience ?? scope.Replace("/.default", "", StringComparison.Ordinal),
            ["iss"] = "https://sts.windows.net/00000000-0000-0000-0000-00000000000a/",
            ["iat"] = now.AddMinutes(-1).ToUnixTimeSeconds(),
            ["nbf"] = now.AddMinutes(-1).ToUnixTimeSeconds(),
            ["exp"] = now.AddHours(1).ToUnixTimeSeconds(),
            ["oid"] = "00000000-0000-0000-0000-00000000000b",
        };
        var token = $"{Part(new { alg = "RS256", typ = "JWT" })}.{Part(claims)}.{Base64Url(Encoding.UTF8.GetBytes("unsigned"))}";
        return new AccessToken(token, now.AddHours(1));
    }

    public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
        new(GetToken(requestContext, cancellationToken));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>The engine's storage parts connected by endpoints and a bearer token, against an emulator that refuses anything else.</summary>
public sealed class IdentityConnectionTests(AzuriteOAuthFixture azurite) : IClassFixture<AzuriteOAuthFixture>
{
    [Fact]
    public async Task TheWholePipeline_RunsOnStorageReachedByToken()
    {
        var credential = new UnsignedTokenCredential();
        var storage = Options.Create(azurite.IdentityOptions(credential));
        var audit = new TableAuditStore(storage, TimeProvider.System);
        await audit.InitializeAsync();
        var bus = new StorageQueueMessageBus(storage, Options.Create(new BusOptions()), Options.Create(new StorageQueueOptions()), NullLogger<StorageQueueMessageBus>.Instance);
        await using var host = await StormTestHost.StartAsync(audit, bus);

        var response = await host.Api.PostWebhookAsync("hello", [], Encoding.UTF8.GetBytes("""{"name": "identity"}"""), TestCallers.Admin, CancellationToken.None);
        var trace = await Eventually.ReturnsAsync(() => audit.GetTraceAsync(response.Body!["trace_tag"]!.GetValue<string>(), CancellationToken.None),
            t => t.Executions.Count == 1 && ExecutionStatus.IsTerminal(t.Executions[0].Status));

        Assert.Equal("Hello identity", trace.Executions[0].Result!["stdout"]!.GetValue<string>());
        // Storage tokens only (the Tables client asks for https://storage.azure.com//.default, the others without the double slash).
        Assert.All(credential.Scopes, scope => Assert.Matches("^https://storage.azure.com//?.default$", scope));
        Assert.NotEmpty(credential.Scopes);
    }

    [Fact]
    public async Task LargeValuesGoToBlobs_AndTheDatastore_ByToken()
    {
        var storage = Options.Create(azurite.IdentityOptions(new UnsignedTokenCredential()));
        var audit = new TableAuditStore(storage, TimeProvider.System);
        await audit.InitializeAsync();
        var large = new string('x', storage.Value.InlineLimit + 10);

        await audit.RecordTriggerInstanceAsync(new ServerlessStorm.Engine.Audit.TriggerInstanceRecord
        {
            Id = "ti-identity",
            TriggerType = "core.st2.webhook",
            Payload = new System.Text.Json.Nodes.JsonObject { ["body"] = large },
            OccurredAt = DateTimeOffset.UtcNow,
            TraceTag = "t-identity",
            Status = ServerlessStorm.Engine.Triggers.TriggerInstanceStatus.Pending,
        }, CancellationToken.None);
        var stored = (await audit.GetTraceAsync("t-identity", CancellationToken.None)).TriggerInstances.Single();
        Assert.Equal(large, stored.Payload!["body"]!.GetValue<string>());

        var datastore = new TableKeyValueStore(storage);
        await datastore.SetAsync(new ServerlessStorm.Engine.Datastore.KeyValueRecord("st2kv.system", "k", "v", false, null), CancellationToken.None);
        Assert.Equal("v", (await datastore.GetAsync("st2kv.system", "k", CancellationToken.None))!.Value);
    }

    [Fact]
    public async Task ATokenForAnotherAudience_IsRefused()
    {
        // The tests above can fail: the emulator checks the token, and one not for storage is turned away.
        var storage = azurite.IdentityOptions(new UnsignedTokenCredential(audience: "https://vault.azure.net"));

        var error = await Assert.ThrowsAsync<RequestFailedException>(() => new StorageClients(storage).Tables.GetTableClient(storage.Names.AuditTable).CreateIfNotExistsAsync());

        Assert.Equal(403, error.Status);
    }
}
