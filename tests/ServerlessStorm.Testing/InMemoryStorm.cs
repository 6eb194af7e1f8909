using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ServerlessStorm.Azure;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;

namespace ServerlessStorm.Testing;

/// <summary>The engine composed as every host composes it (<see cref="AzureStormServices.AddStorm"/>), with everything in memory.</summary>
public static class InMemoryStorm
{
    public static IServiceCollection Compose(string packsPath, TimeProvider? time = null, IMessageBus? bus = null)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            [AzureStormServices.AuditKey] = AzureStormServices.Audits.Memory,
            [AzureStormServices.TransportKey] = AzureStormServices.Transports.Memory,
            [$"{StormOptions.Section}:{nameof(StormOptions.PacksPath)}"] = packsPath,
        }).Build();
        var services = new ServiceCollection();
        services.AddStorm(configuration);
        // A test's own clock and bus in place of the configured ones.
        if (time is not null)
        {
            services.Replace(ServiceDescriptor.Singleton(time));
        }

        if (bus is not null)
        {
            services.Replace(ServiceDescriptor.Singleton(bus));
        }

        return services;
    }
}
