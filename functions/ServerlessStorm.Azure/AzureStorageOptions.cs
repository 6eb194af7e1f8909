namespace ServerlessStorm.Azure;

/// <summary>Where the audit, the payload blobs and the storage queues live (configuration section <c>Storage</c>).</summary>
public sealed class AzureStorageOptions
{
    public const string Section = "Storage";

    public const string EmulatorConnectionString = "UseDevelopmentStorage=true";

    /// <summary>A storage connection string; the default points at Azurite on its standard ports.</summary>
    public string ConnectionString { get; set; } = EmulatorConnectionString;

    /// <summary>Prefix of every table, queue and container name, so several deployments can share an account.</summary>
    public string Prefix { get; set; } = "storm";

    /// <summary>The prefix as table names allow it (letters and digits only).</summary>
    public string TablePrefix => new([.. Prefix.Where(char.IsAsciiLetterOrDigit)]);

    /// <summary>Property values longer than this many characters go to Blob Storage (a Table property holds 32K).</summary>
    public int InlineLimit { get; set; } = 30_000;

    /// <summary>Audit partitions per day and kind of record, so no single partition takes every write.</summary>
    public int AuditShards { get; set; } = 8;

    /// <summary>Audit writes leave as entity-group transactions (false: one request per entity, for comparison).</summary>
    public bool AuditBatching { get; set; } = true;

    /// <summary>Audit requests in flight at once; writes that arrive meanwhile wait and leave together.</summary>
    public int AuditWritesInFlight { get; set; } = 8;

    public bool IsEmulator => ConnectionString.Contains("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase)
        || ConnectionString.Contains("devstoreaccount1", StringComparison.Ordinal);
}
