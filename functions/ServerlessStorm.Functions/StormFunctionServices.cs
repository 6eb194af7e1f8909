using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Azure;
using ServerlessStorm.Engine.Hosting;

namespace ServerlessStorm.Functions;

public static class StormFunctionServices
{
    /// <summary>
    /// The engine as the Function app runs it: packs deployed beside the app, the audit in Table Storage, and the bus
    /// the triggers listen to (Storage Queues, or Service Bus when built with ServiceBusTriggers=true). The storage
    /// account is <c>Storage:ConnectionString</c>, else the app's own <c>AzureWebJobsStorage</c>.
    /// </summary>
    public static IServiceCollection AddStormFunctions(this IServiceCollection services, IConfiguration configuration)
    {
        var storageKey = $"{AzureStorageOptions.Section}:{nameof(AzureStorageOptions.ConnectionString)}";
        if (string.IsNullOrEmpty(configuration[storageKey]) && configuration["AzureWebJobsStorage"] is { Length: > 0 } webJobsStorage)
        {
            configuration[storageKey] = webJobsStorage;
        }

        services.AddStormEngine();
        services.Configure<StormOptions>(o => o.PacksPath = Path.Combine(AppContext.BaseDirectory, "packs"));
        services.Configure<StormOptions>(configuration.GetSection(StormOptions.Section));
        services.AddTableStorageAudit(configuration);
        services.Configure<ServerlessStorm.Engine.Datastore.DatastoreOptions>(configuration.GetSection(ServerlessStorm.Engine.Datastore.DatastoreOptions.Section));
        services.Configure<ServerlessStorm.Engine.Executions.ExecutorOptions>(configuration.GetSection("Storm:Executor"));
        // Workflows run in Durable Functions (the task hub is host.json's extensions.durableTask).
        services.AddSingleton<DurableFunctionsWorkflowEngine>();
        services.AddSingleton<ServerlessStorm.Durable.IWorkflowEngine>(sp => sp.GetRequiredService<DurableFunctionsWorkflowEngine>());
        services.AddSingleton<ServerlessStorm.Engine.Workflows.IWorkflowControl>(sp => sp.GetRequiredService<DurableFunctionsWorkflowEngine>());
        ServerlessStorm.Durable.DurableStormServices.AddStormWorkflowRunner(services);
#if SERVICE_BUS_TRIGGERS
        services.AddServiceBusBus(configuration);
#else
        services.AddStorageQueueBus(configuration);
#endif
        return services;
    }
}
