using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Datastore;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Azure;

/// <summary>
/// The one composition of the engine and its Azure parts, for every host (<c>storm serve</c>, the Function app, the
/// test host): every options section is bound here, and the audit store and the bus are chosen by configuration
/// (<see cref="AuditKey"/>, <see cref="TransportKey"/>), so a setting means the same in every host. Hosts add only
/// what is theirs: how requests and messages reach the engine, and where workflows run.
/// </summary>
public static class AzureStormServices
{
    /// <summary>Where the audit is kept: <c>table</c> (default), <c>write-behind</c> or <c>memory</c>.</summary>
    public const string AuditKey = "Storage:Audit";

    /// <summary>The bus: <c>in-process</c> (default), <c>storage-queue</c>, <c>service-bus</c> or <c>memory</c>.</summary>
    public const string TransportKey = "Bus:Transport";

    /// <summary>The folder of what one process keeps on its own disk (the in-process bus, the write-behind journal).</summary>
    public const string LocalStateKey = "Storage:LocalState";

    public static class Audits
    {
        /// <summary>Table Storage, written before each stage hands on.</summary>
        public const string Table = "table";

        /// <summary>Table Storage written a few milliseconds behind, from a journal on the local disk (one process owns the audit).</summary>
        public const string WriteBehind = "write-behind";

        /// <summary>Process memory: the audit, the datastore, API keys, outputs and slots; nothing outlives the process.</summary>
        public const string Memory = "memory";

        public static readonly string[] All = [Table, WriteBehind, Memory];
    }

    public static class Transports
    {
        /// <summary>The process's own queue, kept on its disk (SQLite) so accepted work survives a restart.</summary>
        public const string InProcess = "in-process";

        public const string StorageQueue = "storage-queue";

        public const string ServiceBus = "service-bus";

        /// <summary>The in-process queue in memory only (with the memory audit: nothing outlives the process).</summary>
        public const string Memory = "memory";

        public static readonly string[] All = [InProcess, StorageQueue, ServiceBus, Memory];
    }

    /// <summary>The engine with its storage and bus as configuration chooses them.</summary>
    public static IServiceCollection AddStorm(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<StormOptions>().Bind(configuration.GetSection(StormOptions.Section))
            .Validate(o => o.Retention >= 0, "Storm:Retention is the number of days the audit keeps: 0 (keep everything) or more")
            .ValidateOnStart();
        services.Configure<ServerlessStorm.Engine.Security.AuthOptions>(configuration.GetSection(ServerlessStorm.Engine.Security.AuthOptions.Section));
        services.Configure<ServerlessStorm.Engine.Api.ApiOptions>(configuration.GetSection(ServerlessStorm.Engine.Api.ApiOptions.Section));
        services.Configure<ServerlessStorm.Engine.Security.Rbac.RbacOptions>(configuration.GetSection(ServerlessStorm.Engine.Security.Rbac.RbacOptions.Section));
        services.Configure<DatastoreOptions>(configuration.GetSection(DatastoreOptions.Section));
        services.Configure<ExecutorOptions>(configuration.GetSection(ExecutorOptions.Section));
        services.Configure<ServerlessStorm.Engine.Python.PythonOptions>(configuration.GetSection(ServerlessStorm.Engine.Python.PythonOptions.Section));
        services.Configure<ServerlessStorm.Engine.Sensors.SensorOptions>(configuration.GetSection(ServerlessStorm.Engine.Sensors.SensorOptions.Section));
        services.AddOptions<BusOptions>().Bind(configuration.GetSection(BusOptions.Section));
        services.AddOptions<AzureStorageOptions>().Bind(configuration.GetSection(AzureStorageOptions.Section));
        services.AddOptions<StorageQueueOptions>().Bind(configuration.GetSection(StorageQueueOptions.Section));
        services.AddOptions<ServiceBusOptions>().Bind(configuration.GetSection(ServiceBusOptions.Section));
        services.AddEntraIdAuthentication(configuration);

        var audit = Choice(configuration, AuditKey, Audits.Table, Audits.All);
        var transport = Choice(configuration, TransportKey, Transports.InProcess, Transports.All);
        var localState = configuration[LocalStateKey];
        if (audit == Audits.WriteBehind && transport != Transports.InProcess)
        {
            throw new ArgumentException($"{AuditKey} '{Audits.WriteBehind}' needs {TransportKey} '{Transports.InProcess}' (got '{transport}'): with a shared bus, other processes read and claim executions in the stored audit");
        }

        if ((audit == Audits.WriteBehind || transport == Transports.InProcess) && string.IsNullOrEmpty(localState))
        {
            throw new ArgumentException($"{LocalStateKey} is not set: the {(transport == Transports.InProcess ? "in-process bus" : "write-behind audit")} keeps its messages in a folder of this machine");
        }

        if (audit == Audits.Memory)
        {
            services.AddSingleton<IAuditStore, InMemoryAuditStore>();
        }
        else
        {
            services.AddSingleton<TableAuditStore>();
            services.AddSingleton<IKeyValueStore, TableKeyValueStore>();
            services.AddSingleton<ServerlessStorm.Engine.Security.ICredentialStore, Security.TableCredentialStore>();
            services.AddSingleton<IExecutionOutputStore, TableExecutionOutputStore>();
            services.AddSingleton<IConcurrencySlots, Executions.TableConcurrencySlots>();
            services.AddSingleton<ServerlessStorm.Engine.Sensors.ISensorStore, Sensors.TableSensorStore>();
            services.AddSingleton<IAuditStore>(audit == Audits.WriteBehind
                ? sp => new WriteBehindAuditStore(sp.GetRequiredService<TableAuditStore>(), localState!,
                    configuration.GetSection(WriteBehindOptions.Section).Get<WriteBehindOptions>() ?? new WriteBehindOptions(),
                    sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<WriteBehindAuditStore>>())
                : sp => sp.GetRequiredService<TableAuditStore>());
        }

        switch (transport)
        {
            case Transports.StorageQueue:
                services.AddSingleton<StorageQueueMessageBus>();
                services.AddSingleton<IMessageBus>(sp => sp.GetRequiredService<StorageQueueMessageBus>());
                services.AddSharedBusWorkers();
                break;
            case Transports.ServiceBus:
                services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<ServiceBusOptions>>().Value.CreateClient());
                services.AddSingleton<IMessageBus, ServiceBusMessageBus>();
                services.AddSharedBusWorkers();
                break;
            case Transports.Memory:
                services.AddSingleton<IMessageBus>(sp => new InMemoryMessageBus(sp.GetRequiredService<IOptions<BusOptions>>().Value, sp.GetRequiredService<ILogger<InMemoryMessageBus>>()));
                break;
            default:
                // Kept on disk, so a killed process's accepted work runs at its next start.
                services.AddSingleton<IMessageBus>(sp => SqliteMessageBus.Open(localState!, sp.GetRequiredService<IOptions<BusOptions>>().Value,
                    sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<SqliteMessageBus>>()));
                break;
        }

        // Last, so the engine's in-memory stores fill only what the configuration left to memory.
        return services.AddStormEngine();
    }

    /// <summary>The value of <paramref name="key"/>: one of <paramref name="allowed"/>, else a clear refusal.</summary>
    private static string Choice(IConfiguration configuration, string key, string fallback, string[] allowed)
    {
        var value = configuration[key] is { Length: > 0 } set ? set.Trim().ToLowerInvariant() : fallback;
        return allowed.Contains(value) ? value : throw new ArgumentException($"{key} is '{configuration[key]}': it must be one of {string.Join(", ", allowed)}");
    }

    /// <summary>
    /// Entra ID bearer tokens for the API, when <c>Storm:Auth:EntraId:TenantId</c> is set (every host composes through
    /// <see cref="AddStorm"/>, so a user signs in the same way to the Function app and to <c>storm serve</c>).
    /// </summary>
    private static IServiceCollection AddEntraIdAuthentication(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(Security.EntraIdOptions.Section);
        if (string.IsNullOrEmpty(section["TenantId"]))
        {
            return services;
        }

        services.AddOptions<Security.EntraIdOptions>().Bind(section)
            .Validate(o => !string.IsNullOrEmpty(o.Audience), "Storm:Auth:EntraId:Audience is not set: the API's app registration (client id or application id URI) that tokens must be for")
            .ValidateOnStart();
        services.AddSingleton<ServerlessStorm.Engine.Security.IBearerTokenValidator>(sp => new Security.EntraIdTokenValidator(
            sp.GetRequiredService<IOptions<Security.EntraIdOptions>>(), sp.GetRequiredService<ILogger<Security.EntraIdTokenValidator>>()));
        return services;
    }

    // Workers sharing a bus learn of each other's death through a table of leases.
    private static IServiceCollection AddSharedBusWorkers(this IServiceCollection services)
    {
        services.AddSingleton<Executions.TableWorkerRegistry>();
        services.AddSingleton<IWorkerRegistry>(sp => sp.GetRequiredService<Executions.TableWorkerRegistry>());
        services.AddHostedService(sp => sp.GetRequiredService<Executions.TableWorkerRegistry>());
        return services;
    }
}
