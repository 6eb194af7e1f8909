using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
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

namespace ServerlessStorm.Cli.Serve;

/// <summary>
/// The local stack in one process: the HTTP API on StackStorm's port, the rules engine and action runners on the
/// chosen bus, the audit in Table Storage, and Azurite started from the repository when it is needed and not running.
/// </summary>
public sealed class StormServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly AzuriteLauncher? _azurite;

    private StormServer(WebApplication app, AzuriteLauncher? azurite)
    {
        _app = app;
        _azurite = azurite;
    }

    public IServiceProvider Services => _app.Services;

    public string Url => _app.Urls.First();

    /// <summary>Loads the packs (throwing <see cref="PackLoadException"/> when they have problems), prepares storage and starts listening.</summary>
    public static async Task<StormServer> StartAsync(ServeSettings settings, Action<ILoggingBuilder>? logging = null, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{settings.Host}:{settings.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = 8 * 1024 * 1024);
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
        builder.Configuration[$"{AzureStorageOptions.Section}:{nameof(AzureStorageOptions.ConnectionString)}"] = settings.StorageConnectionString;
        foreach (var (key, value) in settings.Configuration)
        {
            builder.Configuration[key] = value;
        }

        var services = builder.Services;
        services.AddStormEngine();
        services.Configure<StormOptions>(builder.Configuration.GetSection(StormOptions.Section));
        services.AddTableStorageAudit(builder.Configuration);
        if (settings.InMemoryAudit)
        {
            services.AddSingleton<IAuditStore, InMemoryAuditStore>();
        }

        // Written behind unless asked otherwise, where one process owns the audit: a storage round trip per stage is
        // most of an event's way to its action, and the journal keeps what a killed process accepted.
        var asked = settings.AuditWriteBehind ?? builder.Configuration.GetValue<bool?>($"{AzureStorageOptions.Section}:AuditWriteBehind");
        var writeBehind = !settings.InMemoryAudit && (asked ?? settings.Transport == ServeSettings.Transports.InProcess);
        if (writeBehind)
        {
            if (settings.Transport != ServeSettings.Transports.InProcess)
            {
                throw new ArgumentException($"the write-behind audit needs the in-process transport (got '{settings.Transport}'): with a shared bus, other processes read and claim executions in the stored audit");
            }

            var options = builder.Configuration.GetSection($"{AzureStorageOptions.Section}:WriteBehind").Get<WriteBehindOptions>() ?? new WriteBehindOptions();
            var prefix = builder.Configuration.GetSection(AzureStorageOptions.Section).Get<AzureStorageOptions>()?.TablePrefix ?? "storm";
            var journal = Path.Combine(settings.AuditJournalDirectory, JournalFolderName(settings.StorageConnectionString, prefix));
            services.AddSingleton<IAuditStore>(sp => new WriteBehindAuditStore(sp.GetRequiredService<TableAuditStore>(), journal,
                options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<WriteBehindAuditStore>>()));
        }

        services.Configure<ServerlessStorm.Engine.Datastore.DatastoreOptions>(builder.Configuration.GetSection(ServerlessStorm.Engine.Datastore.DatastoreOptions.Section));
        services.Configure<ServerlessStorm.Engine.Executions.ExecutorOptions>(builder.Configuration.GetSection("Storm:Executor"));
        if (settings.Transport == ServeSettings.Transports.StorageQueue)
        {
            services.AddStorageQueueBus(builder.Configuration);
        }
        else
        {
            services.AddOptions<BusOptions>().Bind(builder.Configuration.GetSection("Bus"));
            services.AddSingleton<IMessageBus>(sp => new InMemoryMessageBus(
                sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<BusOptions>>().Value, sp.GetRequiredService<ILogger<InMemoryMessageBus>>()));
        }

        services.AddStormWorkflows(builder.Configuration);
        services.AddHostedService<StormWorker>();
        var app = builder.Build();

        // Load the packs before anything listens, so an invalid pack stops the start with every problem listed.
        _ = app.Services.GetRequiredService<PackCatalog>();

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
            }

            MapApi(app);
            await app.StartAsync(cancellationToken);
            return new StormServer(app, azurite);
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

    private static void MapApi(WebApplication app)
    {
        var api = app.MapGroup("/api/v1");
        api.MapGet("/", (PackCatalog catalog) => Results.Json(new JsonObject
        {
            ["name"] = "ServerlessStorm",
            ["packs"] = catalog.Packs.Count,
            ["actions"] = catalog.Actions.Count,
            ["rules"] = catalog.Rules.Count,
        }));
        api.MapPost("/webhooks/{**hook}", async (string hook, HttpRequest request, StormApi storm, CancellationToken ct) =>
        {
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body, ct);
            var headers = request.Headers.Select(h => KeyValuePair.Create(h.Key, h.Value.ToString()));
            return ToResult(await storm.PostWebhookAsync(hook, headers, body.ToArray(), ct));
        });
        api.MapPost("/executions", async (HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await JsonBodyAsync(request, ct) is var (body, error) && error is null
                ? await storm.PostExecutionAsync(body, request.Headers["st2-trace-tag"].FirstOrDefault(), ct)
                : error!));
        api.MapGet("/executions", async (HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.ListExecutionsAsync(Query(request), ct)));
        api.MapGet("/executions/{id}", async (string id, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.GetExecutionAsync(id, ct)));
        api.MapPost("/executions/{id}/re_run", async (string id, HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await JsonBodyAsync(request, ct) is var (body, error) && error is null ? await storm.ReRunExecutionAsync(id, body, ct) : error!));
        api.MapGet("/executions/{id}/output", async (string id, HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.GetExecutionOutputAsync(id, Query(request), ct)));
        api.MapDelete("/executions/{id}", async (string id, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.CancelExecutionAsync(id, ct)));
        api.MapPut("/executions/{id}", async (string id, HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await JsonBodyAsync(request, ct) is var (body, error) && error is null ? await storm.UpdateExecutionAsync(id, body, ct) : error!));
        api.MapGet("/triggerinstances", async (HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.ListTriggerInstancesAsync(Query(request), ct)));
        api.MapGet("/keys", async (HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.ListKeysAsync(Query(request), ct)));
        api.MapGet("/keys/{name}", async (string name, HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.GetKeyAsync(name, Query(request), ct)));
        api.MapPut("/keys/{name}", async (string name, HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await JsonBodyAsync(request, ct) is var (body, error) && error is null ? await storm.PutKeyAsync(name, body, ct) : error!));
        api.MapDelete("/keys/{name}", async (string name, HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.DeleteKeyAsync(name, Query(request), ct)));
        api.MapGet("/inquiries", async (HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.ListInquiriesAsync(Query(request), ct)));
        api.MapGet("/inquiries/{id}", async (string id, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.GetInquiryAsync(id, ct)));
        api.MapPut("/inquiries/{id}", async (string id, HttpRequest request, StormApi storm, CancellationToken ct) =>
            ToResult(await JsonBodyAsync(request, ct) is var (body, error) && error is null ? await storm.RespondToInquiryAsync(id, body, ct) : error!));
        api.MapGet("/traces/{traceTag}", async (string traceTag, StormApi storm, CancellationToken ct) =>
            ToResult(await storm.GetTraceAsync(traceTag, ct)));
    }

    /// <summary>The body as JSON (null for an empty body), or the 400 answer that says why it is not JSON.</summary>
    private static async Task<(JsonNode? Body, ApiResponse? Error)> JsonBodyAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength is 0 || (request.ContentLength is null && !request.Headers.ContainsKey("Transfer-Encoding")))
        {
            return (null, null);
        }

        try
        {
            return (await JsonNode.ParseAsync(request.Body, cancellationToken: ct), null);
        }
        catch (System.Text.Json.JsonException ex)
        {
            return (null, ApiResponse.Fault(400, $"the body is not valid JSON: {ex.Message}"));
        }
    }

    private static Dictionary<string, string?> Query(HttpRequest request) =>
        request.Query.ToDictionary(q => q.Key, q => (string?)q.Value.ToString(), StringComparer.Ordinal);

    private static IResult ToResult(ApiResponse response) =>
        Results.Content(response.Body.ToJsonString(), "application/json", System.Text.Encoding.UTF8, response.StatusCode);
}
