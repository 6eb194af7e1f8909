namespace ServerlessStorm.Cli.Serve;

/// <summary>How the local stack runs: where it listens, which packs, which transport, which storage.</summary>
public sealed record ServeSettings
{
    public const int DefaultPort = 9101;

    public string Host { get; init; } = "127.0.0.1";

    public int Port { get; init; } = DefaultPort;

    public string PacksPath { get; init; } = "packs";

    /// <summary>The folder of packs' configs (<c>&lt;pack&gt;.yaml</c>); null: <c>configs</c> beside the packs folder.</summary>
    public string? ConfigsPath { get; init; }

    /// <summary><c>in-process</c> (default), <c>storage-queue</c> or <c>service-bus</c> (the namespace from <c>ServiceBus__*</c> settings).</summary>
    public string Transport { get; init; } = Transports.InProcess;

    /// <summary>The storage connection string; the default is Azurite on its standard ports.</summary>
    public string StorageConnectionString { get; init; } = ServerlessStorm.Azure.AzureStorageOptions.EmulatorConnectionString;

    /// <summary>Where a locally started Azurite keeps its data.</summary>
    public string AzuriteDataDirectory { get; init; } = ".azurite";

    /// <summary>Keep the audit, and with it the datastore, API keys and outputs, in memory instead of Table Storage (nothing survives a restart; for comparisons).</summary>
    public bool InMemoryAudit { get; init; }

    /// <summary>
    /// Write the audit behind the pipeline (journal first, Table Storage a few milliseconds later) instead of before each
    /// stage hands on. Null (the default) takes <c>Storage:AuditWriteBehind</c>, and without it writes behind on the
    /// in-process transport, whose one process owns the audit, and through on the storage-queue one, where it must.
    /// </summary>
    public bool? AuditWriteBehind { get; init; }

    /// <summary>Where the write-behind audit keeps its journal (one folder per storage prefix inside).</summary>
    public string AuditJournalDirectory { get; init; } = Path.Combine(".storm", "audit-journal");

    /// <summary>
    /// Serve without authentication: every request acts as the administrator. Refused unless <see cref="Host"/> is a
    /// loopback address.
    /// </summary>
    public bool NoAuth { get; init; }

    /// <summary>Refuse to start when any pack has a problem, instead of leaving that pack out.</summary>
    public bool StrictPacks { get; init; }

    /// <summary>Where the administrator key made on first start is filed for the CLI (null: the user's default file).</summary>
    public string? CredentialsFile { get; init; }

    /// <summary>Further configuration, as <c>Section:Key</c> pairs (e.g. <c>Storage:AuditBatching</c>).</summary>
    public IReadOnlyDictionary<string, string?> Configuration { get; init; } = new Dictionary<string, string?>();

    /// <summary>The transports a server can run on (the composition's names: Bus:Transport).</summary>
    public static class Transports
    {
        public const string InProcess = ServerlessStorm.Azure.AzureStormServices.Transports.InProcess;
        public const string StorageQueue = ServerlessStorm.Azure.AzureStormServices.Transports.StorageQueue;
        public const string ServiceBus = ServerlessStorm.Azure.AzureStormServices.Transports.ServiceBus;

        public static readonly string[] All = [InProcess, StorageQueue, ServiceBus];
    }
}
