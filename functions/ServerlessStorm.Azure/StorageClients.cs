using Azure.Core;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Microsoft.Extensions.Options;

namespace ServerlessStorm.Azure;

/// <summary>
/// The names of every table, queue and blob container, from the one prefix (<see cref="AzureStorageOptions.Prefix"/>),
/// so every host and trigger uses the same names.
/// </summary>
public sealed class StorageNames(string prefix)
{
    /// <summary>The prefix as table names allow it (letters and digits only).</summary>
    public string TablePrefix { get; } = new([.. prefix.Where(char.IsAsciiLetterOrDigit)]);

    public string AuditTable => TablePrefix + "Audit";

    public string CredentialsTable => TablePrefix + "Credentials";

    public string WorkersTable => TablePrefix + "Workers";

    public string ConcurrencySlotsTable => TablePrefix + "ConcurrencySlots";

    public string ExecutionOutputTable => TablePrefix + "ExecutionOutput";

    public string KeyValuesTable => TablePrefix + "KeyValues";

    public string SensorsTable => TablePrefix + "Sensors";

    public string AuditPayloadsContainer => TablePrefix.ToLowerInvariant() + "-audit-payloads";

    public string BusPayloadsContainer => prefix.ToLowerInvariant() + "-bus-payloads";

    /// <summary>The packs' configs, one <c>&lt;pack&gt;.yaml</c> blob each (StackStorm's configs folder).</summary>
    public string ConfigsContainer => prefix.ToLowerInvariant() + "-configs";

    /// <summary>The Storage Queue a bus queue maps to (queue names are lower case, 3-63 characters).</summary>
    public string Queue(string busQueue) => $"{prefix.ToLowerInvariant()}-{busQueue}";

    /// <summary>Where the Storage Queue transport moves the messages of <paramref name="busQueue"/> it gave up on.</summary>
    public string PoisonQueue(string busQueue) => Queue(busQueue) + "-poison";
}

/// <summary>
/// The storage account's clients, built one way for every host: from the service endpoints and a Microsoft Entra
/// credential (a managed identity in Azure; <see cref="AzureStorageOptions.TableServiceUri"/> and the others), or from a
/// connection string (Azurite, or a user who chooses keys).
/// </summary>
public sealed class StorageClients
{
    public StorageClients(IOptions<AzureStorageOptions> options)
        : this(options.Value)
    {
    }

    /// <param name="options">The account: endpoints (with <paramref name="credential"/> or the configured one) or a connection string.</param>
    /// <param name="credential">The credential for endpoints; null takes the one the options name.</param>
    public StorageClients(AzureStorageOptions options, TokenCredential? credential = null)
    {
        Names = new StorageNames(options.Prefix);
        var tableOptions = new TableClientOptions();
        var blobOptions = new BlobClientOptions();
        var queueOptions = new QueueClientOptions { MessageEncoding = QueueMessageEncoding.None };
        if (options.Transport is { } transport)
        {
            (tableOptions.Transport, blobOptions.Transport, queueOptions.Transport) = (transport, transport, transport);
        }

        if (options.UsesEndpoints)
        {
            var identity = credential ?? options.TokenCredential ?? AzureIdentity.Credential(options.Credential, options.ClientId);
            Tables = new TableServiceClient(Required(options.TableServiceUri, nameof(options.TableServiceUri)), identity, tableOptions);
            Blobs = new BlobServiceClient(Required(options.BlobServiceUri, nameof(options.BlobServiceUri)), identity, blobOptions);
            Queues = new QueueServiceClient(Required(options.QueueServiceUri, nameof(options.QueueServiceUri)), identity, queueOptions);
        }
        else
        {
            Tables = new TableServiceClient(options.ConnectionString, tableOptions);
            Blobs = new BlobServiceClient(options.ConnectionString, blobOptions);
            Queues = new QueueServiceClient(options.ConnectionString, queueOptions);
        }
    }

    public StorageNames Names { get; }

    public TableServiceClient Tables { get; }

    public BlobServiceClient Blobs { get; }

    /// <summary>Queues whose messages are the bus's text as it is (not base64; host.json says the same to the Functions host).</summary>
    public QueueServiceClient Queues { get; }

    private static Uri Required(Uri? uri, string name) =>
        uri ?? throw new InvalidOperationException($"{AzureStorageOptions.Section}:{name} is not set: with service endpoints, the table, blob and queue endpoints are all needed");
}

/// <summary>The Microsoft Entra credential the app connects to Azure services with, named as Azure Functions names it.</summary>
public static class AzureIdentity
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string?, string?), TokenCredential> Credentials = new();

    /// <summary>
    /// A user-assigned managed identity by its <paramref name="clientId"/>, the system-assigned one
    /// (<paramref name="kind"/> <c>managedidentity</c>), else the default chain (environment, workload identity, Azure
    /// CLI…). One per process for each, since each caches its tokens.
    /// </summary>
    public static TokenCredential Credential(string? kind, string? clientId) => Credentials.GetOrAdd((kind, clientId), _ => (kind, clientId) switch
    {
        (_, { Length: > 0 }) => new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(clientId)),
        ({ } named, _) when named.Equals("managedidentity", StringComparison.OrdinalIgnoreCase) => new ManagedIdentityCredential(ManagedIdentityId.SystemAssigned),
        _ => new DefaultAzureCredential(),
    });
}
