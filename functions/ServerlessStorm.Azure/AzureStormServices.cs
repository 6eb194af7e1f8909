using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Datastore;
using ServerlessStorm.Engine.Datastore;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Azure;

public static class AzureStormServices
{
    /// <summary>The audit in Table Storage (with large values in Blob Storage), and the datastore and concurrency slots beside it.</summary>
    public static IServiceCollection AddTableStorageAudit(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<AzureStorageOptions>().Bind(configuration.GetSection(AzureStorageOptions.Section));
        services.AddSingleton<TableAuditStore>();
        services.AddSingleton<IAuditStore>(sp => sp.GetRequiredService<TableAuditStore>());
        services.AddSingleton<IKeyValueStore, TableKeyValueStore>();
        services.AddSingleton<ServerlessStorm.Engine.Security.ICredentialStore, Security.TableCredentialStore>();
        services.AddSingleton<ServerlessStorm.Engine.Executions.IExecutionOutputStore, TableExecutionOutputStore>();
        services.AddSingleton<ServerlessStorm.Engine.Executions.IConcurrencySlots, Executions.TableConcurrencySlots>();
        return services;
    }

    /// <summary>
    /// Entra ID bearer tokens for the API, when <c>Storm:Auth:EntraId:TenantId</c> is set (both hosts call this, so a
    /// user signs in the same way to the Function app and to <c>storm serve</c>).
    /// </summary>
    public static IServiceCollection AddEntraIdAuthentication(this IServiceCollection services, IConfiguration configuration)
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
            sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<Security.EntraIdOptions>>(), sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<Security.EntraIdTokenValidator>>()));
        return services;
    }

    /// <summary>The bus on Storage Queues.</summary>
    public static IServiceCollection AddStorageQueueBus(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<AzureStorageOptions>().Bind(configuration.GetSection(AzureStorageOptions.Section));
        services.AddOptions<BusOptions>().Bind(configuration.GetSection("Bus"));
        services.AddOptions<StorageQueueOptions>().Bind(configuration.GetSection(StorageQueueOptions.Section));
        services.AddSingleton<StorageQueueMessageBus>();
        services.AddSingleton<IMessageBus>(sp => sp.GetRequiredService<StorageQueueMessageBus>());
        return services.AddSharedBusWorkers();
    }

    /// <summary>The bus on Service Bus queues.</summary>
    public static IServiceCollection AddServiceBusBus(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<BusOptions>().Bind(configuration.GetSection("Bus"));
        services.AddOptions<ServiceBusOptions>().Bind(configuration.GetSection(ServiceBusOptions.Section));
        services.AddSingleton<IMessageBus, ServiceBusMessageBus>();
        return services.AddSharedBusWorkers();
    }

    // Workers sharing a bus learn of each other's death through a table of leases.
    private static IServiceCollection AddSharedBusWorkers(this IServiceCollection services)
    {
        services.AddOptions<AzureStorageOptions>();
        services.AddSingleton<Executions.TableWorkerRegistry>();
        services.AddSingleton<ServerlessStorm.Engine.Executions.IWorkerRegistry>(sp => sp.GetRequiredService<Executions.TableWorkerRegistry>());
        services.AddHostedService(sp => sp.GetRequiredService<Executions.TableWorkerRegistry>());
        return services;
    }
}
