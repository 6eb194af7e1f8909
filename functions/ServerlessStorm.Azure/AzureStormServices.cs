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

    /// <summary>The bus on Storage Queues.</summary>
    public static IServiceCollection AddStorageQueueBus(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<AzureStorageOptions>().Bind(configuration.GetSection(AzureStorageOptions.Section));
        services.AddOptions<BusOptions>().Bind(configuration.GetSection("Bus"));
        services.AddOptions<StorageQueueOptions>().Bind(configuration.GetSection(StorageQueueOptions.Section));
        services.AddSingleton<StorageQueueMessageBus>();
        services.AddSingleton<IMessageBus>(sp => sp.GetRequiredService<StorageQueueMessageBus>());
        return services;
    }

    /// <summary>The bus on Service Bus queues.</summary>
    public static IServiceCollection AddServiceBusBus(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<BusOptions>().Bind(configuration.GetSection("Bus"));
        services.AddOptions<ServiceBusOptions>().Bind(configuration.GetSection(ServiceBusOptions.Section));
        services.AddSingleton<IMessageBus, ServiceBusMessageBus>();
        return services;
    }
}
