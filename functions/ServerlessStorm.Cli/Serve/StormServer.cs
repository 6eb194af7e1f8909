using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ServerlessStorm.Azure;
using ServerlessStorm.Azure.Audit;
using ServerlessStorm.Azure.Local;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Durable;
using Microsoft.Extensions.Configuration;
using ServerlessStorm.Engine.Api;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Engine.Packs;
using ServerlessStorm.Engine.Security;

namespace ServerlessStorm.Cli.Serve;

/// <summary>
/// The local stack in one process: the HTTP API on StackStorm's port, the rules engine and action runners on the
/// chosen bus, the audit in Table Storage, and Azurite started from the repository when it is needed and not running.
/// </summary>
public sealed class StormServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly AzuriteLauncher? _azurite;

    private StormServer(WebApplication app, AzuriteLauncher? azurite, string? credentialsFile, bool adminKeyCreated)
    {
        _app = app;
        _azurite = azurite;
        CredentialsFilePath = credentialsFile;
        AdminKeyCreated = adminKeyCreated;
    }

    /// <summary>Where the administrator key is filed for the CLI (null with authentication off).</summary>
    public string? CredentialsFilePath { get; }

    /// <summary>Whether this start made a new administrator key (none was filed, or the filed one no longer works).</summary>
    public bool AdminKeyCreated { get; }

    private const long MaxRequestBodyBytes = 8 * 1024 * 1024;

    public IServiceProvider Services => _app.Services;

    public string Url => _app.Urls.First();

    /// <summary>Loads the packs (throwing <see cref="PackLoadException"/> when they have problems), prepares storage and starts listening.</summary>
    public static async Task<StormServer> StartAsync(ServeSettings settings, Action<ILoggingBuilder>? logging = null, CancellationToken cancellationToken = default)
    {
        if (settings.NoAuth && !IsLoopback(settings.Host))
        {
            throw new ArgumentException($"authentication can be switched off only on a loopback address, and --host {settings.Host} is not one: anyone who reaches it could run commands on this machine. Drop --no-auth (clients then need an API key), or listen on 127.0.0.1");
        }

        var builder = WebApplication.CreateSlimBuilder();
        // A stop takes seconds, whatever does not answer: what is unfinished resumes at the next start.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        builder.WebHost.UseUrls($"http://{settings.Host}:{settings.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = MaxRequestBodyBytes);
        builder.Logging.ClearProviders();
        if (logging is null)
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true).AddFilter("Microsoft", LogLevel.Warning).AddFilter("System", LogLevel.Warning);
        }
        else
        {
            logging(builder.Logging);
        }

        builder.Configuration[$"{StormOptions.Section}:{nameof(StormOptions.PacksPath)}"] = settings.PacksPath;
        builder.Configuration[$"{StormOptions.Section}:{nameof(StormOptions.StrictPacks)}"] = settings.StrictPacks.ToString();
        if (settings.ConfigsPath is not null)
        {
            builder.Configuration[$"{StormOptions.Section}:{nameof(StormOptions.ConfigsPath)}"] = settings.ConfigsPath;
        }
        builder.Configuration[$"{AzureStorageOptions.Section}:{nameof(AzureStorageOptions.ConnectionString)}"] = settings.StorageConnectionString;
        foreach (var (key, value) in settings.Configuration)
        {
            builder.Configuration[key] = value;
        }

        builder.Configuration[$"{AuthOptions.Section}:{nameof(AuthOptions.Enabled)}"] = (!settings.NoAuth).ToString();

        // Packs' missing or stale virtualenvs are built as they load, unless configured otherwise (as `storm pack install` would).
        var buildVirtualenvs = $"{ServerlessStorm.Engine.Python.PythonOptions.Section}:{nameof(ServerlessStorm.Engine.Python.PythonOptions.BuildVirtualenvsAtStart)}";
        builder.Configuration[buildVirtualenvs] ??= bool.TrueString;

        // Written behind unless asked otherwise, where one process owns the audit: a storage round trip per stage is
        // most of an event's way to its action, and the journal keeps what a killed process accepted.
        var asked = settings.AuditWriteBehind ?? builder.Configuration.GetValue<bool?>($"{AzureStorageOptions.Section}:AuditWriteBehind");
        var writeBehind = !settings.InMemoryAudit && (asked ?? settings.Transport == ServeSettings.Transports.InProcess);
        builder.Configuration[AzureStormServices.AuditKey] = settings.InMemoryAudit ? AzureStormServices.Audits.Memory
            : writeBehind ? AzureStormServices.Audits.WriteBehind : AzureStormServices.Audits.Table;
        // With the audit in memory nothing outlives this process anyway, the bus's messages included.
        builder.Configuration[AzureStormServices.TransportKey] = settings.InMemoryAudit && settings.Transport == ServeSettings.Transports.InProcess
            ? AzureStormServices.Transports.Memory : settings.Transport;

        // What this server keeps on its own disk for the audit's storage account: the journal, the in-process bus, the delivery ids.
        var prefix = builder.Configuration.GetSection(AzureStorageOptions.Section).Get<AzureStorageOptions>()?.TablePrefix ?? "storm";
        builder.Configuration[AzureStormServices.LocalStateKey] = Path.Combine(settings.AuditJournalDirectory, JournalFolderName(settings.StorageConnectionString, prefix));

        var services = builder.Services;
        services.AddStorm(builder.Configuration);
        ExportTelemetry(builder);
        services.PostConfigure<ApiOptions>(o =>
        {
            // A server on a loopback or named address answers only to its own names, so a DNS name rebound to it
            // reaches nothing; one on every address (0.0.0.0) leaves the names to configuration.
            if (o.AllowedHosts.Count == 0 && settings.Host is not ("0.0.0.0" or "::" or "[::]" or "*" or "+"))
            {
                var names = IsLoopback(settings.Host) ? ["127.0.0.1", "localhost", "[::1]", settings.Host] : new[] { settings.Host };
                foreach (var name in names.Distinct(StringComparer.OrdinalIgnoreCase))
                {
                    o.AllowedHosts.Add($"{name}:{settings.Port}");
                }
            }
        });
        services.AddStormWorkflows(builder.Configuration);
        services.AddHostedService<StormWorker>();
        // This process stays up, so it can hold long-running sensors too (the Function app cannot).
        services.PostConfigure<ServerlessStorm.Engine.Sensors.SensorOptions>(o => o.RunLongRunning = true);
        services.AddHostedService<ServerlessStorm.Engine.Sensors.SensorWorker>();
        var app = builder.Build();

        // Load the packs and the RBAC files before anything listens, so an invalid one stops the start with every problem listed.
        _ = app.Services.GetRequiredService<PackCatalog>();
        _ = app.Services.GetRequiredService<ServerlessStorm.Engine.Security.Rbac.RbacDefinitions>();

        AzuriteLauncher? azurite = null;
        if (AzuriteEndpointsFor(settings.StorageConnectionString) is { } endpoints)
        {
            azurite = await AzuriteLauncher.EnsureRunningAsync(endpoints, settings.AzuriteDataDirectory, cancellationToken: cancellationToken);
        }

        try
        {
            if (!settings.InMemoryAudit)
            {
                await app.Services.GetRequiredService<TableAuditStore>().InitializeAsync();

                // The write-behind audit stores what a killed process left in its journal before anything is served.
                if (app.Services.GetRequiredService<IAuditStore>() is WriteBehindAuditStore writeBehindAudit)
                {
                    await writeBehindAudit.FlushAsync(cancellationToken);
                }

                // And the bus queues again what it had accepted, ahead of anything new.
                _ = app.Services.GetRequiredService<IMessageBus>();
            }

            var (credentialsFile, created) = settings.NoAuth ? (null, false) : await EnsureAdminKeyAsync(app.Services, settings, cancellationToken);
            MapApi(app, MaxRequestBodyBytes);
            await app.StartAsync(cancellationToken);
            return new StormServer(app, azurite, credentialsFile, created);
        }
        catch
        {
            // Let go of what the services hold (the audit journal's lock among them), for a host that goes on.
            await app.DisposeAsync();
            if (azurite is not null)
            {
                await azurite.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>
    /// Traces, metrics and logs over OTLP, when the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (or a signal's own
    /// endpoint) is set, to Jaeger, the .NET Aspire dashboard or any collector; the other <c>OTEL_*</c> variables
    /// (protocol, headers, service name) apply as the OpenTelemetry SDK reads them. Without one nothing is collected.
    /// </summary>
    private static void ExportTelemetry(WebApplicationBuilder builder)
    {
        string[] endpoints = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"];
        if (!endpoints.Any(e => !string.IsNullOrEmpty(builder.Configuration[e])))
        {
            return;
        }

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("storm-serve"))
            // The HTTP request's span too: a webhook's trace starts where the request came in.
            .WithTracing(tracing => tracing.AddSource(ServerlessStorm.Engine.Diagnostics.StormTracing.SourceName).AddAspNetCoreInstrumentation())
            .WithMetrics(metrics => metrics.AddMeter(ServerlessStorm.Engine.Diagnostics.StormMetrics.MeterName))
            .WithLogging()
            .UseOtlpExporter();
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        finally
        {
            // The Azurite this server started stops with it, whatever stopping the services threw.
            if (_azurite is not null)
            {
                await _azurite.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// The journal's folder for one audit: the storage prefix and a hash of the account's table endpoint, so that what
    /// a killed server left unstored is taken up only by a server writing to the same tables, never replayed into
    /// another account.
    /// </summary>
    public static string JournalFolderName(string connectionString, string tablePrefix)
    {
        var account = new global::Azure.Data.Tables.TableServiceClient(connectionString);
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{account.AccountName}|{account.Uri.AbsoluteUri}"));
        return $"{tablePrefix}-{Convert.ToHexStringLower(hash)[..8]}";
    }

    /// <summary>The Azurite to ensure for a connection string: the emulator's default, or an explicit local devstoreaccount1.</summary>
    public static AzuriteEndpoints? AzuriteEndpointsFor(string connectionString)
    {
        if (connectionString.Contains("UseDevelopmentStorage=true", StringComparison.OrdinalIgnoreCase))
        {
            return AzuriteEndpoints.Default;
        }

        var parts = connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1], StringComparer.OrdinalIgnoreCase);
        if (parts.GetValueOrDefault("AccountName") != "devstoreaccount1")
        {
            return null;
        }

        Uri? Endpoint(string name) => parts.TryGetValue(name, out var url) && Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.IsLoopback ? uri : null;
        return Endpoint("BlobEndpoint") is { } blob && Endpoint("QueueEndpoint") is { } queue && Endpoint("TableEndpoint") is { } table
            ? new AzuriteEndpoints(blob.Port, queue.Port, table.Port, blob.Host)
            : null;
    }

    public static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var address) && System.Net.IPAddress.IsLoopback(address));

    /// <summary>
    /// The administrator's key for the CLI: the one filed for this server if it still works here, else a new one,
    /// filed (0600) for the CLI to find by itself. Its value is never printed or logged.
    /// </summary>
    private static async Task<(string Path, bool Created)> EnsureAdminKeyAsync(IServiceProvider services, ServeSettings settings, CancellationToken cancellationToken)
    {
        var path = settings.CredentialsFile ?? Client.CredentialsFile.DefaultPath;
        var api = new Uri($"http://{(IsLoopback(settings.Host) || settings.Host is "0.0.0.0" or "::" ? "127.0.0.1" : settings.Host)}:{settings.Port}");
        var (user, key) = await services.GetRequiredService<CredentialService>().AdminKeyAsync(Client.CredentialsFile.Read(api, path), "storm serve", cancellationToken);
        if (key is null)
        {
            return (path, false);
        }

        Client.CredentialsFile.Write(api, user, key, path);
        return (path, true);
    }

    /// <summary>Every request goes to the engine's gateway, which routes, authenticates and answers it.</summary>
    private static void MapApi(WebApplication app, long maxBodyBytes)
    {
        var gateway = app.Services.GetRequiredService<ApiGateway>();
        app.Run(async context =>
        {
            var request = context.Request;
            if (request.ContentLength > maxBodyBytes)
            {
                await WriteAsync(context.Response, ApiResponse.Fault(413, $"the body is {request.ContentLength} bytes; the limit is {maxBodyBytes}"), context.RequestAborted);
                return;
            }

            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body, context.RequestAborted);
            var response = await gateway.HandleAsync(new ApiRequest
            {
                Method = request.Method,
                Path = request.Path.Value ?? "/",
                Query = request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal),
                Headers = [.. request.Headers.Select(h => KeyValuePair.Create(h.Key, h.Value.ToString()))],
                Body = body.GetBuffer().AsMemory(0, (int)body.Length),
            }, context.RequestAborted);
            await WriteAsync(context.Response, response, context.RequestAborted);
        });
    }

    private static async Task WriteAsync(HttpResponse http, ApiResponse response, CancellationToken cancellationToken)
    {
        http.StatusCode = response.StatusCode;
        foreach (var (name, value) in response.Headers)
        {
            http.Headers[name] = value;
        }

        if (response.Body is not null)
        {
            http.ContentType = "application/json; charset=utf-8";
            await http.WriteAsync(response.Body.ToJsonString(), cancellationToken);
        }
    }
}
