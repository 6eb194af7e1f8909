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

    /// <summary>
    /// The folder of packs' configs, StackStorm's <c>configs/&lt;pack&gt;.yaml</c>; by default <c>configs</c> beside the
    /// packs folder. A host may read them from elsewhere instead (the Function app: a Blob container).
    /// </summary>
    public string? ConfigsPath { get; set; }
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
        services.AddOptions<Python.PythonOptions>();
        services.TryAddSingleton<Python.IPythonEnvironments, Python.HostPythonEnvironments>();
        // Pack code's Python runs here as local processes; the Function app replaces this with its remote Python host.
        services.TryAddSingleton<Python.IPythonLauncher, Python.LocalPythonLauncher>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Sensors.ISensorRunner, Python.PythonSensorRunner>(sp =>
            new Python.PythonSensorRunner(sp.GetRequiredService<Python.IPythonEnvironments>(), sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<Python.PythonSensorRunner>>(),
                sp.GetRequiredService<Python.IPythonLauncher>())));
        // The built-in runners, and any more a host registers as IActionRunner.
        services.AddSingleton(sp => new RunnerRegistry(RunnerRegistry.BuiltIn(sp.GetRequiredService<EgressGuard>(), sp.GetRequiredService<Python.IPythonEnvironments>(),
            sp.GetRequiredService<Datastore.KeyValueService>(), sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>(),
            // core.inject_trigger's runner dispatches through the webhook sensor, which needs the catalog: found when it runs.
            () => sp.GetRequiredService<WebhookSensor>(), sp.GetRequiredService<Python.IPythonLauncher>(), InjectDenial(sp)).Concat(sp.GetServices<IActionRunner>())));
        services.AddSingleton<Sensors.ISensorRunner, Sensors.DotnetSensorRunner>();
        services.TryAddSingleton<IPackConfigSource>(sp =>
        {
            var storm = sp.GetRequiredService<IOptions<StormOptions>>().Value;
            return new FolderPackConfigSource(FolderPackConfigSource.Resolve(storm.ConfigsPath, storm.PacksPath));
        });
        // Packs' Python: their own virtualenvs. Added, not tried: it must be the one resolved whatever else registered a
        // host-only IPythonEnvironments before or after (the last registration is the one resolved, so it is replaced).
        services.AddSingleton<Python.PackVirtualEnvironments>();
        services.Replace(ServiceDescriptor.Singleton<Python.IPythonEnvironments>(sp => sp.GetRequiredService<Python.PackVirtualEnvironments>()));
        services.AddSingleton(sp => LoadCatalog(sp.GetRequiredService<IOptions<StormOptions>>().Value, sp.GetRequiredService<RunnerRegistry>(),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("ServerlessStorm.Packs"), sp.GetRequiredService<IPackConfigSource>(),
            sp.GetRequiredService<Python.PackVirtualEnvironments>(), sp.GetServices<Sensors.ISensorRunner>()));
        services.AddSingleton<PackConfigService>();
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
        services.AddSingleton<TimersQueueHandler>();
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

    // Builds (or reports) the loaded packs' missing and stale virtualenvs; the packs whose build failed, with why.
    private static Dictionary<string, IReadOnlyList<PackProblem>> PrepareVirtualenvs(PackLoadResult result, Python.PackVirtualEnvironments python, Microsoft.Extensions.Logging.ILogger logger)
    {
        var unbuilt = new Dictionary<string, IReadOnlyList<PackProblem>>(StringComparer.Ordinal);
        foreach (var pack in result.Catalog.Packs.Values.Where(p => result.Packs.Any(s => s.Loaded && s.Directory == Path.GetFullPath(p.Directory))))
        {
            // A pack without requirements is not checked at all: a host with no Python (the Function app) loads it all the same.
            if (!File.Exists(Path.Combine(pack.Directory, Python.PackVirtualEnvironments.RequirementsFile)))
            {
                continue;
            }

            Python.PythonEnvironmentStatus status;
            try
            {
                status = python.Describe(pack.Name, pack.Directory);
            }
            catch (Python.PythonEnvironmentException ex)
            {
                // No interpreter to compare with: the pack loads, and its Python code says why it cannot run.
                Diagnostics.StormLogs.VirtualenvNotReady(logger, pack.Name, ex.Message);
                continue;
            }

            if (status.State == Python.PythonEnvironmentState.Current)
            {
                continue;
            }

            if (!python.BuildsAtStart)
            {
                Diagnostics.StormLogs.VirtualenvNotReady(logger, pack.Name, status.Reason);
                continue;
            }

            try
            {
                // At start, before anything is served: waiting here is what a start that builds costs.
                python.EnsureAsync(pack.Name, pack.Directory).GetAwaiter().GetResult();
            }
            catch (Python.PythonEnvironmentException ex)
            {
                var requirements = Path.Combine(pack.Directory, Python.PackVirtualEnvironments.RequirementsFile);
                unbuilt[Path.GetFullPath(pack.Directory)] = [new PackProblem(PackLoader.Display(requirements), Yaml.SourcePosition.Unknown, null, ex.Message)];
            }
        }

        return unbuilt;
    }

    /// <summary>The RBAC folder: as configured, else <c>rbac</c> beside the packs folder (StackStorm's layout).</summary>
    public static string RbacPath(Security.Rbac.RbacOptions options, string packsPath) =>
        options.Path ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(packsPath)) ?? ".", "rbac");

    /// <summary>
    /// Loads the packs: strictly (throwing <see cref="PackLoadException"/> listing every problem) when
    /// <see cref="StormOptions.StrictPacks"/> is set, else leaving out each pack with problems, logged with them.
    /// </summary>
    /// With <paramref name="python"/>, each loaded pack's virtualenv is built when missing or stale (when its options
    /// say so, as <c>storm serve</c>'s do; otherwise reported), and a pack whose virtualenv cannot be built is left out with why.
    public static PackCatalog LoadCatalog(StormOptions options, RunnerRegistry runners, Microsoft.Extensions.Logging.ILogger logger, IPackConfigSource? configs = null, Python.PackVirtualEnvironments? python = null,
        IEnumerable<Sensors.ISensorRunner>? sensorRunners = null)
    {
        // Read once when the packs load, as the catalog is: the host starts with the packs (a sync factory), so this waits.
        var documents = (configs ?? new FolderPackConfigSource(FolderPackConfigSource.Resolve(options.ConfigsPath, options.PacksPath)))
            .ReadAllAsync(CancellationToken.None).GetAwaiter().GetResult();
        Diagnostics.StormLogs.PackConfigsRead(logger, documents.Count, configs?.ToString() ?? "the configs folder");
        var loader = new PackLoader(runners) { Configs = documents, SensorRunners = [.. sensorRunners ?? []] };
        var result = options.StrictPacks ? loader.LoadAll(options.PacksPath) : loader.LoadLeavingOutBroken(options.PacksPath);
        if (python is not null && PrepareVirtualenvs(result, python, logger) is { Count: > 0 } unbuilt)
        {
            result = options.StrictPacks
                ? result with { Problems = [.. result.Problems, .. unbuilt.Values.SelectMany(p => p)] }
                : loader.LoadLeavingOutBroken(options.PacksPath, unbuilt);
        }

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

    // core.inject_trigger posts to the generic webhook as the execution's user; rules' executions run as the system
    // user, whose rules the operator wrote, as StackStorm's stanley may.
    private static Func<string, string?> InjectDenial(IServiceProvider sp) => user =>
        user == sp.GetRequiredService<IOptions<Security.AuthOptions>>().Value.SystemUser ? null
        : sp.GetRequiredService<Security.Rbac.AccessPolicy>().Denial(user, Security.Permissions.WebhookSend,
            new Security.Rbac.ResourceRef($"webhook:{WebhookSensor.GenericHook}"));
}
