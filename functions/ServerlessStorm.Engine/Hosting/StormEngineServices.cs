using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Actions;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Rules;
using ServerlessStorm.Engine.Triggers;

namespace ServerlessStorm.Engine.Hosting;

/// <summary>Engine settings (configuration section <c>Storm</c>).</summary>
public sealed class StormOptions
{
    public const string Section = "Storm";

    /// <summary>The folder of packs to load (each sub-folder with a pack.yaml is a pack).</summary>
    public string PacksPath { get; set; } = "packs";

    /// <summary>Networks that actions may reach although the egress guard would refuse them (CIDR).</summary>
    public IList<string> AllowedNetworks { get; } = [];

    /// <summary>
    /// Days the audit keeps (trigger instances, rule enforcements, executions, their payloads and output); older whole
    /// UTC days are purged daily. 0 keeps everything.
    /// </summary>
    public int Retention { get; set; } = Audit.AuditRetention.DefaultDays;

    /// <summary>
    /// Refuse to start when any pack has a problem. Off by default: a pack with problems is left out and reported,
    /// and the others run, so one pack's defect does not stop everyone's automation.
    /// </summary>
    public bool StrictPacks { get; set; }
}

public static class StormEngineServices
{
    /// <summary>
    /// Registers the engine. The host adds an <see cref="Audit.IAuditStore"/> and a <see cref="Messaging.IMessageBus"/>
    /// (in memory or Azure) and decides how messages reach <see cref="RulesEngine"/> and <see cref="ActionExecutor"/>.
    /// </summary>
    public static IServiceCollection AddStormEngine(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<StormOptions>();
        services.AddOptions<WebhookOptions>();
        services.AddOptions<ExecutorOptions>();
        services.AddSingleton(sp => new EgressGuard(sp.GetRequiredService<IOptions<StormOptions>>().Value.AllowedNetworks.Select(IPNetwork.Parse)));
        // The built-in runners, and any more a host registers as IActionRunner.
        services.AddSingleton(sp => new RunnerRegistry(RunnerRegistry.BuiltIn(sp.GetRequiredService<EgressGuard>()).Concat(sp.GetServices<IActionRunner>())));
        services.AddSingleton<Sensors.ISensorRunner, Sensors.DotnetSensorRunner>();
        services.AddSingleton(sp => LoadCatalog(sp.GetRequiredService<IOptions<StormOptions>>().Value, sp.GetRequiredService<RunnerRegistry>(),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("ServerlessStorm.Packs"), sp.GetServices<Sensors.ISensorRunner>()));
        services.AddSingleton(sp => new RuleMatcher(sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<RuleMatcher>>(), sp.GetService<Expressions.Runtime.IKeyValueLookup>()));
        services.AddSingleton<IRuleEvaluator, CompiledRuleEvaluator>();
        services.AddOptions<Datastore.DatastoreOptions>();
        services.TryAddSingleton<Datastore.IKeyValueStore, Datastore.InMemoryKeyValueStore>();
        services.AddSingleton<Datastore.KeyValueService>();
        services.AddSingleton<TriggerDispatcher>();
        services.AddSingleton<WebhookSensor>();
        services.AddSingleton<TimerSensor>();
        services.AddOptions<Sensors.SensorOptions>();
        services.TryAddSingleton<Sensors.ISensorStore, Sensors.InMemorySensorStore>();
        services.AddSingleton<Sensors.SensorScheduler>();
        services.AddSingleton<ExecutionService>();
        services.AddSingleton<RulesEngine>();
        services.AddSingleton<Audit.AuditRetention>();
        services.TryAddSingleton<IExecutionOutputStore, InMemoryExecutionOutputStore>();
        services.AddSingleton<CompletionAnnouncer>();
        services.TryAddSingleton<IConcurrencySlots, InMemoryConcurrencySlots>();
        services.TryAddSingleton<IWorkerRegistry, SingleProcessWorkerRegistry>();
        services.AddSingleton<ConcurrencyGate>();
        services.AddSingleton<InquiryService>();
        services.AddSingleton<Workflows.WorkflowTaskRunner>();
        services.AddSingleton<ActionExecutor>();
        services.AddSingleton<StormConsumers>();
        services.AddHostedService<BusBacklogSampler>();
        services.AddSingleton<StormApi>();
        services.AddOptions<Security.AuthOptions>();
        services.AddOptions<ApiOptions>();
        services.TryAddSingleton<Security.ICredentialStore, Security.InMemoryCredentialStore>();
        services.AddSingleton<Security.CredentialService>();
        services.TryAddSingleton<Security.IUserBackend, Security.HtpasswdUserBackend>();
        services.AddSingleton<Security.WebhookSignatures>();
        services.AddSingleton<Security.ApiAuthenticator>();
        services.AddOptions<Security.Rbac.RbacOptions>();
        services.AddSingleton(sp => Security.Rbac.RbacDefinitions.Load(RbacPath(
            sp.GetRequiredService<IOptions<Security.Rbac.RbacOptions>>().Value, sp.GetRequiredService<IOptions<StormOptions>>().Value.PacksPath)));
        services.AddSingleton<Security.Rbac.AccessPolicy>();
        services.AddSingleton<ApiGateway>();
        return services;
    }

    /// <summary>The RBAC folder: as configured, else <c>rbac</c> beside the packs folder (StackStorm's layout).</summary>
    public static string RbacPath(Security.Rbac.RbacOptions options, string packsPath) =>
        options.Path ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(packsPath)) ?? ".", "rbac");

    /// <summary>
    /// Loads the packs: strictly (throwing <see cref="PackLoadException"/> listing every problem) when
    /// <see cref="StormOptions.StrictPacks"/> is set, else leaving out each pack with problems, logged with them.
    /// </summary>
    public static PackCatalog LoadCatalog(StormOptions options, RunnerRegistry runners, Microsoft.Extensions.Logging.ILogger logger,
        IEnumerable<Sensors.ISensorRunner>? sensorRunners = null)
    {
        var loader = new PackLoader(runners) { SensorRunners = [.. sensorRunners ?? []] };
        var result = options.StrictPacks ? loader.LoadAll(options.PacksPath) : loader.LoadLeavingOutBroken(options.PacksPath);
        // Strict, any problem refuses; otherwise only one no pack owns (leaving packs out could not mend it).
        if (result.Problems.Except(result.Packs.SelectMany(p => p.Problems)).ToList() is { Count: > 0 } refused)
        {
            throw new PackLoadException(refused);
        }

        foreach (var pack in result.Packs)
        {
            if (!pack.Loaded)
            {
                Diagnostics.StormLogs.PackLeftOut(logger, pack.Name, pack.Directory, pack.Problems.Count, pack.Problems[0].ToString());
            }

            foreach (var warning in pack.Warnings)
            {
                Diagnostics.StormLogs.PackWarning(logger, pack.Name, warning.ToString());
            }
        }

        return new PackCatalog(result.Catalog, result.Packs);
    }
}
