using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessStorm.Engine.Actions;

namespace ServerlessStorm.Durable;

public static class DurableStormServices
{
    /// <summary>The orquesta runner and the local task hub that runs its workflows (started with the host).</summary>
    public static IServiceCollection AddStormWorkflows(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<WorkflowOptions>().Bind(configuration.GetSection("Storm:Workflows"));
        services.AddSingleton<WorkflowTaskHub>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<WorkflowTaskHub>());
        services.AddSingleton<IWorkflowEngine>(sp => sp.GetRequiredService<WorkflowTaskHub>());
        services.AddSingleton<ServerlessStorm.Engine.Workflows.IWorkflowControl>(sp => sp.GetRequiredService<WorkflowTaskHub>());
        return services.AddStormWorkflowRunner();
    }

    /// <summary>What every host that runs workflows needs besides its engine: the orquesta runner and the activities' work.</summary>
    public static IServiceCollection AddStormWorkflowRunner(this IServiceCollection services)
    {
        services.AddSingleton<WorkflowActivities>();
        services.AddSingleton<IActionRunner, OrquestaRunner>();
        return services;
    }
}
