using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Functions;

namespace ServerlessStorm.Deployment.Tests;

/// <summary>
/// The app settings main.bicep writes against what the deployed build of the app (Service Bus triggers) reads: the
/// app composed from those settings alone starts, reaching storage and Service Bus by its managed identity, and
/// every setting written is one the app or the Functions host reads.
/// </summary>
public sealed class AppSettingsTests
{
    private const string ClientId = "11111111-2222-3333-4444-555555555555";

    private static async Task<Dictionary<string, string>> BicepAppSettingsAsync()
    {
        var settings = ArmTemplate.OfApp(await Bicep.TemplateAsync(), "Microsoft.Web/sites/config", "functions");
        Assert.Equal("[format('{0}/{1}', parameters('name'), 'appsettings')]", settings.Json["name"]!.GetValue<string>());
        return settings.Properties.ToDictionary(p => p.Key, p => p.Value!.GetValue<string>(), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>A plausible value for each setting as the platform would hand it to the app once deployed.</summary>
    private static string Deployed(string key, string armValue) => key switch
    {
        _ when !armValue.StartsWith('[') => armValue, // written as it is
        _ when armValue.Contains("@Microsoft.KeyVault(", StringComparison.Ordinal) => Convert.ToBase64String(new byte[32]), // resolved by the platform
        _ when key.EndsWith("blobServiceUri", StringComparison.OrdinalIgnoreCase) => "https://stfake.blob.core.windows.net/",
        _ when key.EndsWith("queueServiceUri", StringComparison.OrdinalIgnoreCase) => "https://stfake.queue.core.windows.net/",
        _ when key.EndsWith("tableServiceUri", StringComparison.OrdinalIgnoreCase) => "https://stfake.table.core.windows.net/",
        _ when key.EndsWith("clientId", StringComparison.OrdinalIgnoreCase) => ClientId,
        _ when key.EndsWith("fullyQualifiedNamespace", StringComparison.OrdinalIgnoreCase) => "sb-fake.servicebus.windows.net",
        _ when key.EndsWith("TenantId", StringComparison.OrdinalIgnoreCase) => "22222222-3333-4444-5555-666666666666",
        _ when key.EndsWith("Audience", StringComparison.OrdinalIgnoreCase) => "api://serverlessstorm",
        "Storm__Retention" => "30", // string(retentionDays)
        "APPLICATIONINSIGHTS_CONNECTION_STRING" => "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://example.invalid/",
        _ => "InstrumentationKey-free value of " + key,
    };

    private static async Task<(ServiceProvider Services, RecordingConfiguration Recorded)> ComposeFromTheBicepAsync()
    {
        var values = (await BicepAppSettingsAsync()).ToDictionary(s => s.Key.Replace("__", ":", StringComparison.Ordinal), s => (string?)Deployed(s.Key, s.Value));
        values["WEBSITE_SITE_NAME"] = "func-fake"; // set by the platform on every instance
        var recorded = new RecordingConfiguration(values);
        var configuration = new ConfigurationBuilder().Add(recorded).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddStormFunctions(configuration);
        var provider = services.BuildServiceProvider();
        provider.GetService<IStartupValidator>()?.Validate();
        // Every options type the app registers, made as it would be on first use.
        foreach (var type in services.Select(s => s.ServiceType).Where(t => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IConfigureOptions<>)).Distinct())
        {
            var options = provider.GetRequiredService(typeof(IOptions<>).MakeGenericType(type.GetGenericArguments()));
            _ = options.GetType().GetProperty("Value")!.GetValue(options);
        }

        return (provider, recorded);
    }

    [Fact]
    public async Task TheAppComposedFromTheBicepSettingsAlone_Starts_ByIdentity_OnServiceBus()
    {
        var (services, _) = await ComposeFromTheBicepAsync();
        await using var _services = services;

        var storage = services.GetRequiredService<IOptions<AzureStorageOptions>>().Value;
        Assert.True(storage.UsesEndpoints);
        Assert.False(storage.IsEmulator);
        Assert.Equal(("managedidentity", ClientId), (storage.Credential, storage.ClientId));
        var serviceBus = services.GetRequiredService<IOptions<ServiceBusOptions>>().Value;
        Assert.Equal(("sb-fake.servicebus.windows.net", "managedidentity", ClientId), (serviceBus.FullyQualifiedNamespace, serviceBus.Credential, serviceBus.ClientId));
        Assert.IsType<ServiceBusMessageBus>(services.GetRequiredService<IMessageBus>());
        // No Python beside the .NET app: Python wrappers run on the Python app, over the bus's own connection.
        Assert.IsType<ServerlessStorm.Azure.Python.ServiceBusPythonLauncher>(services.GetRequiredService<ServerlessStorm.Engine.Python.IPythonLauncher>());

        // Telemetry goes to Application Insights with OpenTelemetry, ingested as the managed identity.
        Assert.NotNull(services.GetService<OpenTelemetry.Trace.TracerProvider>());
        using (var span = ServerlessStorm.Engine.Diagnostics.StormTracing.Source.StartActivity("deployment test"))
        {
            Assert.NotNull(span); // the app's tracer listens to the engine's source
        }

        var ingestion = StormFunctionServices.EntraIdIngestion((await BicepAppSettingsAsync())["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].Replace("[format('ClientId={0};Authorization=AAD', parameters('identityClientId'))]", $"ClientId={ClientId};Authorization=AAD", StringComparison.Ordinal));
        Assert.IsType<global::Azure.Identity.ManagedIdentityCredential>(ingestion);
    }

    [Fact]
    public async Task EverySettingTheBicepWrites_IsReadByTheApp()
    {
        var (services, recorded) = await ComposeFromTheBicepAsync();
        await using var _services = services;
        var read = recorded.Provider.Reads.ToHashSet(StringComparer.OrdinalIgnoreCase);

        Assert.All(await BicepAppSettingsAsync(), setting =>
        {
            var key = setting.Key.Replace("__", ":", StringComparison.Ordinal);
            Assert.True(read.Contains(key), $"main.bicep writes {setting.Key}, which the app does not read");
        });
    }

    [Fact]
    public async Task TheServiceBusTriggers_ConnectThroughTheNamespaceTheBicepNames()
    {
        var settings = await BicepAppSettingsAsync();

        Assert.Equal("managedidentity", settings[ServiceBusFunctions.Connection + "__credential"]);
        Assert.Contains(ServiceBusFunctions.Connection + "__fullyQualifiedNamespace", settings.Keys);
        Assert.Contains(ServiceBusFunctions.Connection + "__clientId", settings.Keys);
        // Flex Consumption takes the runtime from functionAppConfig; these settings are refused there.
        Assert.DoesNotContain(settings.Keys, k => k is "FUNCTIONS_WORKER_RUNTIME" or "FUNCTIONS_EXTENSION_VERSION" or "WEBSITE_RUN_FROM_PACKAGE");
    }

    [Fact]
    public async Task WithoutTheDatastoreKeySetting_TheComposedAppRefusesToStart()
    {
        // The check above can fail: leave one required setting out and the same composition does not start.
        var values = (await BicepAppSettingsAsync()).Where(s => s.Key != "Storm__Datastore__EncryptionKey")
            .ToDictionary(s => s.Key.Replace("__", ":", StringComparison.Ordinal), s => (string?)Deployed(s.Key, s.Value));
        values["WEBSITE_SITE_NAME"] = "func-fake";
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        await using var services = new ServiceCollection().AddLogging().AddStormFunctions(configuration).BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains(StormFunctionServices.MissingDatastoreKey, error.Failures);
    }

    /// <summary>A configuration source that records every key looked up in it.</summary>
    private sealed class RecordingConfiguration(Dictionary<string, string?> values) : IConfigurationSource
    {
        public RecordingProvider Provider { get; } = new(values);

        public IConfigurationProvider Build(IConfigurationBuilder builder) => Provider;

        public sealed class RecordingProvider(Dictionary<string, string?> values) : ConfigurationProvider
        {
            public ConcurrentBag<string> Reads { get; } = [];

            public override void Load()
            {
                foreach (var (key, value) in values)
                {
                    Data[key] = value;
                }
            }

            public override bool TryGet(string key, out string? value)
            {
                Reads.Add(key);
                return base.TryGet(key, out value);
            }
        }
    }
}
