using Microsoft.Extensions.Configuration;
using Azure.Monitor.OpenTelemetry.Exporter;
using Microsoft.Azure.Functions.Worker.OpenTelemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
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
    public const string MissingDatastoreKey = "Storm__Datastore__EncryptionKey is not set: the Function app needs the datastore's key "
        + "(base64 of 32 bytes; in Azure an app setting referencing Key Vault, @Microsoft.KeyVault(SecretUri=…)). Without it, "
        + "each instance would derive a key of its own and could not open secrets another instance sealed";

    public const string UnresolvedDatastoreKey = "Storm__Datastore__EncryptionKey is a Key Vault reference the platform could not resolve: "
        + "the secret does not exist yet (the azd hook infra/hooks/datastore-key.sh creates it) or the app's identity may not read it "
        + "(Key Vault Secrets User, and keyVaultReferenceIdentity on the app); the Function app's Environment variables blade shows the reason";

    public const string MissingStorage = "storage is not configured: this app runs in Azure but would use the local emulator (UseDevelopmentStorage=true). "
        + "Set AzureWebJobsStorage__blobServiceUri, AzureWebJobsStorage__queueServiceUri and AzureWebJobsStorage__tableServiceUri "
        + "(or AzureWebJobsStorage__accountName) with AzureWebJobsStorage__credential=managedidentity and AzureWebJobsStorage__clientId, "
        + "or AzureWebJobsStorage as a connection string";

    /// <summary>Whether this process is an App Service / Functions instance in Azure (the platform sets these).</summary>
    public static bool RunsInAzure(IConfiguration configuration) =>
        !string.IsNullOrEmpty(configuration["WEBSITE_INSTANCE_ID"]) || !string.IsNullOrEmpty(configuration["WEBSITE_SITE_NAME"]);

    /// <summary>
    /// The Functions host's own storage settings become the engine's, in both of their forms: a connection string
    /// (<c>AzureWebJobsStorage</c>), or an identity connection (<c>AzureWebJobsStorage__blobServiceUri</c>,
    /// <c>__queueServiceUri</c>, <c>__tableServiceUri</c> or <c>__accountName</c>, with <c>__credential</c> and
    /// <c>__clientId</c>). Settings under <c>Storage</c> win.
    /// </summary>
    public static void UseWebJobsStorage(IConfiguration configuration)
    {
        static void Default(IConfiguration configuration, string name, string? value)
        {
            var key = $"{AzureStorageOptions.Section}:{name}";
            if (string.IsNullOrEmpty(configuration[key]) && !string.IsNullOrEmpty(value))
            {
                configuration[key] = value;
            }
        }

        var webJobs = configuration.GetSection("AzureWebJobsStorage");
        Default(configuration, nameof(AzureStorageOptions.ConnectionString), webJobs.Value);
        var account = webJobs["accountName"];
        foreach (var (service, name) in new[] { ("blob", nameof(AzureStorageOptions.BlobServiceUri)), ("queue", nameof(AzureStorageOptions.QueueServiceUri)), ("table", nameof(AzureStorageOptions.TableServiceUri)) })
        {
            Default(configuration, name, webJobs[$"{service}ServiceUri"] ?? (account is { Length: > 0 } ? $"https://{account}.{service}.core.windows.net" : null));
        }

        Default(configuration, nameof(AzureStorageOptions.Credential), webJobs["credential"]);
        Default(configuration, nameof(AzureStorageOptions.ClientId), webJobs["clientId"]);
    }

    /// <summary>The bus the triggers of this build listen to; a setting naming another is refused.</summary>
#if SERVICE_BUS_TRIGGERS
    public const string Transport = AzureStormServices.Transports.ServiceBus;
#else
    public const string Transport = AzureStormServices.Transports.StorageQueue;
#endif

    public static IServiceCollection AddStormFunctions(this IServiceCollection services, IConfiguration configuration)
    {
        UseWebJobsStorage(configuration);
        // Many instances share the audit and the bus: the audit in Table Storage, the bus the triggers listen to.
        Require(configuration, AzureStormServices.AuditKey, AzureStormServices.Audits.Table, "every instance reads and claims executions in the stored audit");
        Require(configuration, AzureStormServices.TransportKey, Transport, "the triggers of this build listen there");
        if (string.IsNullOrEmpty(configuration[$"{StormOptions.Section}:{nameof(StormOptions.PacksPath)}"]))
        {
            configuration[$"{StormOptions.Section}:{nameof(StormOptions.PacksPath)}"] = Path.Combine(AppContext.BaseDirectory, "packs");
        }

        // Packs' configs come from a Blob container (the packs ship in the app package; their values do not).
        services.AddSingleton<ServerlessStorm.Engine.Packs.IPackConfigSource, ServerlessStorm.Azure.Packs.BlobPackConfigSource>();
        // The same authentication as storm serve; it cannot be switched off here (the app is reachable from anywhere).
        services.AddStorm(configuration);
        services.PostConfigure<ServerlessStorm.Engine.Security.AuthOptions>(o => o.Enabled = true);
        // Sensors' polls are ticks on the timers queue: nothing runs between polls, and an app without sensors is never woken.
        services.PostConfigure<ServerlessStorm.Engine.Sensors.SensorOptions>(o => o.Ticks = true);
        // In Azure, storage that falls back to the emulator is a missing setting, not a choice.
        services.AddOptions<AzureStorageOptions>()
            .Validate(o => !(RunsInAzure(configuration) && o.IsEmulator), MissingStorage)
            .ValidateOnStart();
        // Every instance must seal and open datastore secrets with one key, so the app does not start without it
        // (the key derived from the machine that storm serve falls back to differs from instance to instance).
        services.AddOptions<ServerlessStorm.Engine.Datastore.DatastoreOptions>()
            .Validate(o => !string.IsNullOrEmpty(o.EncryptionKey), MissingDatastoreKey)
            // An unresolved reference reaches the app as its own text.
            .Validate(o => o.EncryptionKey?.StartsWith("@Microsoft.KeyVault(", StringComparison.OrdinalIgnoreCase) != true, UnresolvedDatastoreKey)
            .ValidateOnStart();
        // Workflows run in Durable Functions (the task hub is host.json's extensions.durableTask).
        services.AddSingleton<DurableFunctionsWorkflowEngine>();
        services.AddSingleton<ServerlessStorm.Durable.IWorkflowEngine>(sp => sp.GetRequiredService<DurableFunctionsWorkflowEngine>());
        services.AddSingleton<ServerlessStorm.Engine.Workflows.IWorkflowControl>(sp => sp.GetRequiredService<DurableFunctionsWorkflowEngine>());
        ServerlessStorm.Durable.DurableStormServices.AddStormWorkflowRunner(services);
        services.AddHostedService<TimerArming>();
#if SERVICE_BUS_TRIGGERS
        // The app has no Python of its own: Python wrappers run on the Python Function app, over the bus's namespace.
        // Replace, so this wins over the engine's local launcher whatever the order of registration.
        services.Replace(ServiceDescriptor.Singleton<ServerlessStorm.Engine.Python.IPythonLauncher, ServerlessStorm.Azure.Python.ServiceBusPythonLauncher>());
#endif
        AddTelemetry(services, configuration);
#if !SERVICE_BUS_TRIGGERS
        // The queue triggers listen where the bus publishes, or the app does not start.
        services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<AzureStorageOptions>>(new QueueTriggerNames(configuration));
#endif
        return services;
    }

    public const string ApplicationInsightsConnectionString = "APPLICATIONINSIGHTS_CONNECTION_STRING";

    public const string ApplicationInsightsAuthentication = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING";

    /// <summary>
    /// The engine's traces, metrics and logs to Application Insights with OpenTelemetry (the Functions host sends its
    /// own with <c>telemetryMode: OpenTelemetry</c> in host.json, so they join in one trace), when the deployment gives
    /// the component's connection string; ingested with Microsoft Entra ID when
    /// <c>APPLICATIONINSIGHTS_AUTHENTICATION_STRING</c> says so (<c>ClientId=…;Authorization=AAD</c>).
    /// </summary>
    private static void AddTelemetry(IServiceCollection services, IConfiguration configuration)
    {
        if (configuration[ApplicationInsightsConnectionString] is not { Length: > 0 } connectionString)
        {
            return;
        }

        var credential = EntraIdIngestion(configuration[ApplicationInsightsAuthentication]);
        services.AddOpenTelemetry()
            .UseFunctionsWorkerDefaults()
            .WithTracing(tracing => tracing.AddSource(ServerlessStorm.Engine.Diagnostics.StormTracing.SourceName))
            .WithMetrics(metrics => metrics.AddMeter(ServerlessStorm.Engine.Diagnostics.StormMetrics.MeterName))
            .UseAzureMonitorExporter(o =>
            {
                o.ConnectionString = connectionString;
                o.Credential = credential;
            });
    }

    /// <summary>The credential <c>APPLICATIONINSIGHTS_AUTHENTICATION_STRING</c> names: a managed identity, by client id or the system one.</summary>
    public static global::Azure.Core.TokenCredential? EntraIdIngestion(string? authentication)
    {
        var parts = (authentication ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1], StringComparer.OrdinalIgnoreCase);
        return parts.GetValueOrDefault("Authorization")?.Equals("AAD", StringComparison.OrdinalIgnoreCase) == true
            ? AzureIdentity.Credential("managedidentity", parts.GetValueOrDefault("ClientId"))
            : null;
    }

    /// <summary>Sets <paramref name="key"/> to the one value this app can run with, refusing another.</summary>
    private static void Require(IConfiguration configuration, string key, string value, string why)
    {
        if (configuration[key] is { Length: > 0 } set && !set.Equals(value, StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"{key} is '{set}', but the Function app runs with '{value}': {why}");
        }

        configuration[key] = value;
    }
}
