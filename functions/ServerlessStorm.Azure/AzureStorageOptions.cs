namespace ServerlessStorm.Azure;

/// <summary>Where the audit, the payload blobs and the storage queues live (configuration section <c>Storage</c>).</summary>
public sealed class AzureStorageOptions
{
    public const string Section = "Storage";

    public const string EmulatorConnectionString = "UseDevelopmentStorage=true";

    /// <summary>A storage connection string; the default points at Azurite on its standard ports. Not used when the endpoints are set.</summary>
    public string ConnectionString { get; set; } = EmulatorConnectionString;

    /// <summary>The account's Table service endpoint, for a connection by identity (with <see cref="BlobServiceUri"/> and <see cref="QueueServiceUri"/>).</summary>
    public Uri? TableServiceUri { get; set; }

    public Uri? BlobServiceUri { get; set; }

    public Uri? QueueServiceUri { get; set; }

    /// <summary><c>managedidentity</c> for the app's managed identity (as Azure Functions' identity connections say it); else the default credential chain.</summary>
    public string? Credential { get; set; }

    /// <summary>The client id of a user-assigned managed identity.</summary>
    public string? ClientId { get; set; }

    /// <summary>Set in code only: a credential to use instead of the one <see cref="Credential"/> and <see cref="ClientId"/> name.</summary>
    public global::Azure.Core.TokenCredential? TokenCredential { get; set; }

    /// <summary>Set in code only: the HTTP transport of every storage client (the default when null).</summary>
    public global::Azure.Core.Pipeline.HttpPipelineTransport? Transport { get; set; }

    /// <summary>Whether the account is reached by its endpoints and an Entra credential rather than a connection string.</summary>
    public bool UsesEndpoints => TableServiceUri is not null || BlobServiceUri is not null || QueueServiceUri is not null;

    /// <summary>Prefix of every table, queue and container name, so several deployments can share an account.</summary>
    public string Prefix { get; set; } = "storm";

    /// <summary>The prefix as table names allow it (letters and digits only).</summary>
    public string TablePrefix => Names.TablePrefix;

    /// <summary>Every table, queue and container name.</summary>
    public StorageNames Names => new(Prefix);

    /// <summary>Property values longer than this many characters go to Blob Storage (a Table property holds 32K).</summary>
    public int InlineLimit { get; set; } = 30_000;

    /// <summary>Audit partitions per day and kind of record, so no single partition takes every write.</summary>
    public int AuditShards { get; set; } = 8;

    /// <summary>Audit writes leave as entity-group transactions (false: one request per entity, for comparison).</summary>
    public bool AuditBatching { get; set; } = true;

    /// <summary>Audit requests in flight at once; writes that arrive meanwhile wait and leave together.</summary>
    public int AuditWritesInFlight { get; set; } = 8;

    public bool IsEmulator => !UsesEndpoints && ConnectionString.Contains("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase)
        || ConnectionString.Contains("devstoreaccount1", StringComparison.Ordinal);
}
