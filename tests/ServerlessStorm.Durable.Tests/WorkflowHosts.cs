using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Durable.Tests;

/// <summary>The engine with its Table audit and the local task hub, on Azurite under a prefix of its own.</summary>
internal static class WorkflowHosts
{
    public static async Task<(StormTestHost Host, WorkflowTaskHub Hub)> StartAsync(AzuriteFixture azurite, string packsRoot, TimeProvider? clock = null,
        Action<IServiceCollection>? configure = null)
    {
        var storage = azurite.NewStorageOptions();
        var audit = new TableAuditStore(Options.Create(storage), clock ?? TimeProvider.System);
        var host = await StormTestHost.StartAsync(audit, new InMemoryMessageBus(), packsRoot, services =>
        {
            if (clock is not null)
            {
                services.AddSingleton(clock);
            }

            services.AddSingleton(Options.Create(storage));
            services.AddStormWorkflows(new ConfigurationBuilder().Build());
            configure?.Invoke(services);
        });
        var hub = host.Services.GetRequiredService<WorkflowTaskHub>();
        await hub.StartAsync(CancellationToken.None); // the packs have workflows, so this starts the task hub
        return (host, hub);
    }
}
