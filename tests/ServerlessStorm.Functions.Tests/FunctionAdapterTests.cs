using System.Text;
using System.Text.Json.Nodes;
using Azure.Storage.Queues;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ServerlessStorm.Azure.Messaging;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;
using ServerlessStorm.Engine.Hosting;
using ServerlessStorm.Engine.Security;
using ServerlessStorm.Engine.Messaging;
using ServerlessStorm.Testing;

namespace ServerlessStorm.Functions.Tests;

/// <summary>
/// The functions called as the host would call them, over the app's real service registrations and Azurite: the
/// webhook over HTTP types, then the queue functions fed the raw queue text the host would hand them.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class FunctionAdapterTests(AzuriteFixture azurite) : IAsyncLifetime
{
    private const string TriggerInstancesQueue = "storm-trigger-instances";
    private const string ExecutionsQueue = "storm-action-executions";

    private ServiceProvider _services = null!;
    private string _connectionString = "";

    public Task InitializeAsync()
    {
        _connectionString = azurite.ConnectionString;
        _services = Compose("storm", RepositoryPaths.Packs);
        return Task.CompletedTask;
    }

    /// <summary>The app's services over this Azurite, with every name under <paramref name="prefix"/>, as the host would make them.</summary>
    private ServiceProvider Compose(string prefix, string packs)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = azurite.ConnectionString,
            ["Storage:Prefix"] = prefix,
            ["Storm:Datastore:EncryptionKey"] = Convert.ToBase64String(new byte[32]),
            [QueueFunctions.TriggerInstancesQueueSetting] = $"{prefix}-trigger-instances",
            [QueueFunctions.ExecutionsQueueSetting] = $"{prefix}-action-executions",
            [QueueFunctions.TimersQueueSetting] = $"{prefix}-timers",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddStormFunctions(configuration);
        services.Configure<StormOptions>(o => o.PacksPath = packs);
        services.AddTransient<ApiFunctions>().AddTransient<QueueFunctions>().AddTransient<TimerFunctions>();
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
    }

    public async Task DisposeAsync() => await _services.DisposeAsync();

    [Fact]
    public async Task WithoutADatastoreKey_TheAppRefusesToStart_SayingWhatToSet()
    {
        var error = await RefusalAsync(new() { ["Storm:Datastore:EncryptionKey"] = null });

        Assert.Contains("Storm__Datastore__EncryptionKey is not set", error.Message);
    }

    [Fact]
    public async Task AnUnresolvedKeyVaultReference_StopsTheApp_SayingWhy()
    {
        var error = await RefusalAsync(new() { ["Storm:Datastore:EncryptionKey"] = "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/storm-datastore-key)" });

        Assert.Equal(StormFunctionServices.UnresolvedDatastoreKey, Assert.Single(error.Failures));
    }

    /// <summary>
    /// Starts the app as the host would with <paramref name="settings"/> on top of a valid set (null removes one), and
    /// returns why it refused to start.
    /// </summary>
    private async Task<Microsoft.Extensions.Options.OptionsValidationException> RefusalAsync(Dictionary<string, string?> settings)
    {
        var all = new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage"] = _connectionString,
            ["Storm:Datastore:EncryptionKey"] = Convert.ToBase64String(new byte[32]),
            [QueueFunctions.TriggerInstancesQueueSetting] = TriggerInstancesQueue,
            [QueueFunctions.ExecutionsQueueSetting] = ExecutionsQueue,
            [QueueFunctions.TimersQueueSetting] = "storm-timers",
        };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new Microsoft.Extensions.Hosting.HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(all.Where(s => s.Value is not null));
        builder.Services.AddLogging().AddStormFunctions(builder.Configuration);
        using var host = builder.Build();
        return await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => host.StartAsync());
    }

    /// <summary>A request as the Functions host hands it over, with an API key unless <paramref name="apiKey"/> is empty.</summary>
    private async Task<HttpRequest> RequestAsync(string method, string path, string? body = null, string? apiKey = null)
    {
        apiKey ??= (await _services.GetRequiredService<CredentialService>().CreateApiKeyAsync("st2admin", null, CancellationToken.None)).Key;
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Path = path;
        context.Request.Headers.Host = "storm.example.net";
        if (apiKey.Length > 0)
        {
            context.Request.Headers["St2-Api-Key"] = apiKey;
        }

        context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(body ?? ""));
        context.Request.ContentType = body is null ? null : "application/json";
        return context.Request;
    }

    [Fact]
    public async Task Webhook_ThenQueueFunctions_RunTheHelloExampleEndToEnd()
    {
        var api = _services.GetRequiredService<ApiFunctions>();
        var request = await RequestAsync("POST", "/api/v1/webhooks/hello", """{"name":"functions"}""");

        var result = (ContentResult)await api.ApiAsync(request, null!, CancellationToken.None);

        Assert.Equal(202, result.StatusCode);
        var traceTag = JsonNode.Parse(result.Content!)!["trace_tag"]!.GetValue<string>();
        var queues = _services.GetRequiredService<QueueFunctions>();
        await queues.RulesEngineAsync(await TakeAsync(TriggerInstancesQueue), 1, CancellationToken.None);
        await queues.ActionRunnerAsync(await TakeAsync(ExecutionsQueue), 1, null!, CancellationToken.None); // no workflow here: no Durable client needed

        var trace = await _services.GetRequiredService<IAuditStore>().GetTraceAsync(traceTag, CancellationToken.None);
        var execution = Assert.Single(trace.Executions);
        Assert.Equal(ExecutionStatus.Succeeded, execution.Status);
        Assert.Equal("Hello functions", execution.Result!["stdout"]!.GetValue<string>());
        Assert.Equal("processed", trace.Webhook().Status);
    }

    [Fact]
    public async Task Webhook_MalformedBody_Is400()
    {
        var request = await RequestAsync("POST", "/api/v1/webhooks/hello", "{");

        var result = (ContentResult)await _services.GetRequiredService<ApiFunctions>().ApiAsync(request, null!, CancellationToken.None);

        Assert.Equal(400, result.StatusCode);
        Assert.Contains("not valid JSON", result.Content);
    }

    [Fact]
    public async Task GetExecution_Unknown_Is404()
    {
        var result = (ContentResult)await _services.GetRequiredService<ApiFunctions>().ApiAsync(await RequestAsync("GET", "/api/v1/executions/nope"), null!, CancellationToken.None);

        Assert.Equal(404, result.StatusCode);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not-a-key")]
    public async Task Api_WithoutAValidKey_Is401_AndRunsNothing(string apiKey)
    {
        var request = await RequestAsync("POST", "/api/v1/executions", """{"action": "core.local", "parameters": {"cmd": "touch /tmp/storm-functions-unauthenticated"}}""", apiKey);

        var result = (ContentResult)await _services.GetRequiredService<ApiFunctions>().ApiAsync(request, null!, CancellationToken.None);

        Assert.Equal(401, result.StatusCode);
        Assert.Contains("Unauthorized", result.Content);
        Assert.Empty(await _services.GetRequiredService<IAuditStore>().QueryExecutionsAsync(new AuditQuery(null, null, null, 10), CancellationToken.None));
    }

    [Fact]
    public async Task AuthFunction_IssuesATokenForAnHtpasswdUser_ThatTheApiFunctionTakes()
    {
        var htpasswd = Path.GetTempFileName();
        await File.WriteAllTextAsync(htpasswd, $"alice:{BCrypt.Net.BCrypt.HashPassword("s3cret", 4)}\n");
        _services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AuthOptions>>().Value.HtpasswdFile = htpasswd;
        var request = await RequestAsync("POST", "/auth/v1/tokens", """{"ttl": 60}""", apiKey: "");
        request.Headers.Authorization = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("alice:s3cret"));

        var issued = (ContentResult)await _services.GetRequiredService<ApiFunctions>().AuthAsync(request, null!, CancellationToken.None);
        var token = JsonNode.Parse(issued.Content!)!["token"]!.GetValue<string>();
        async Task<ContentResult> AsAliceAsync(string path)
        {
            var get = await RequestAsync("GET", path, apiKey: "");
            get.Headers["X-Auth-Token"] = token;
            return (ContentResult)await _services.GetRequiredService<ApiFunctions>().ApiAsync(get, null!, CancellationToken.None);
        }

        var root = await AsAliceAsync("/api/v1");
        var listed = await AsAliceAsync("/api/v1/executions");

        File.Delete(htpasswd);
        Assert.Equal(201, issued.StatusCode);
        Assert.Equal("alice", JsonNode.Parse(issued.Content!)!["user"]!.GetValue<string>());
        Assert.Equal(200, root.StatusCode);
        // The same RBAC as storm serve: alice holds no role here.
        Assert.Equal(403, listed.StatusCode);
        Assert.Equal("User \"alice\" doesn't have required permission \"execution_list\"", JsonNode.Parse(listed.Content!)!["faultstring"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheDailyRetention_DeletesTheAuditsDaysOlderThanStormRetention_AndKeepsTheRest()
    {
        using var packs = new TempPacks().WithPack("empty");
        await using var services = Compose($"ret{Random.Shared.Next(100000, 999999)}", packs.Root);
        var audit = services.GetRequiredService<ServerlessStorm.Engine.Audit.IAuditStore>();
        var now = DateTimeOffset.UtcNow;
        ServerlessStorm.Engine.Executions.ExecutionRecord Finished(DateTimeOffset at) => new()
        {
            Id = ServerlessStorm.Engine.StormIds.New(at), ActionRef = "core.noop", RunnerType = "noop", TraceTag = "retention", Parameters = [],
            Status = "succeeded", StartTimestamp = at, History = [],
        };
        var old = Finished(now.AddDays(-40));
        var recent = Finished(now.AddDays(-2));
        Assert.True(await audit.TryCreateExecutionAsync(old, CancellationToken.None));
        Assert.True(await audit.TryCreateExecutionAsync(recent, CancellationToken.None));

        await services.GetRequiredService<TimerFunctions>().AuditRetentionAsync(new TimerInfo(), CancellationToken.None);

        Assert.Null(await audit.GetExecutionAsync(old.Id, CancellationToken.None)); // Storm:Retention defaults to 30 days
        Assert.NotNull(await audit.GetExecutionAsync(recent.Id, CancellationToken.None));
    }

    [Fact]
    public async Task ATimerRule_FiresFromItsDelayedTick_WhichSchedulesTheNext_WithNothingPolling()
    {
        using var packs = new TempPacks().WithPack("timers");
        packs.Write("timers/rules/every_second.yaml", """
            name: every_second
            trigger: {type: core.st2.IntervalTimer, parameters: {unit: seconds, delta: 1}}
            action: {ref: core.noop}
            """);
        var prefix = $"tmr{Random.Shared.Next(100000, 999999)}";
        await using var services = Compose(prefix, packs.Root);
        var queues = services.GetRequiredService<QueueFunctions>();

        // The hourly re-arm (and an instance's start) schedules the next occurrence: a message hidden until it falls due.
        await services.GetRequiredService<TimerFunctions>().TimerRearmAsync(new TimerInfo(), CancellationToken.None);
        var tick = await TakeAsync($"{prefix}-timers");
        await queues.TimerTicksAsync(tick, 1, CancellationToken.None);

        // (A queue message is the bus's envelope: the message id, and the CloudEvent as its body.)
        static JsonNode Event(string queued) => JsonNode.Parse(queued)!["body"]!;
        var instance = Event(await TakeAsync($"{prefix}-trigger-instances"));
        Assert.Equal("core.st2.IntervalTimer", instance["type"]!.GetValue<string>());
        Assert.Equal(Event(tick)["id"]!.GetValue<string>(), instance["id"]!.GetValue<string>());
        var next = Event(await TakeAsync($"{prefix}-timers"));
        Assert.True(next["data"]!["at"]!.GetValue<DateTimeOffset>() > instance["time"]!.GetValue<DateTimeOffset>());

        // A second copy of the tick already handled (another instance's start scheduled it too) fires nothing more.
        await queues.TimerTicksAsync(tick, 1, CancellationToken.None);
        var triggerQueue = new QueueClient(azurite.ConnectionString, $"{prefix}-trigger-instances");
        Assert.Empty((await triggerQueue.PeekMessagesAsync(5)).Value);
    }

    [Fact]
    public void TheAppPublishesToTheQueuesItsFunctionsListenOn()
    {
        var bus = (StorageQueueMessageBus)_services.GetRequiredService<IMessageBus>();

        Assert.Equal(TriggerInstancesQueue, bus.QueueName(StormQueues.TriggerInstances));
        Assert.Equal(ExecutionsQueue, bus.QueueName(StormQueues.Executions));
    }

    [Fact]
    public async Task QueueSettingsThatMissTheBusQueues_StopTheApp_NamingTheSettingAndTheName()
    {
        var error = await RefusalAsync(new()
        {
            ["Storage:Prefix"] = "prod",
            [QueueFunctions.TriggerInstancesQueueSetting] = "prod-trigger-instances",
            [QueueFunctions.TimersQueueSetting] = "prod-timers",
        });

        Assert.Contains("STORM_ACTION_EXECUTIONS_QUEUE is 'storm-action-executions' but must be 'prod-action-executions'", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("STORM_TRIGGER_INSTANCES_QUEUE", error.Message, StringComparison.Ordinal);
    }

    private async Task<string> TakeAsync(string queueName)
    {
        var queue = new QueueClient(_connectionString, queueName);
        var message = await Eventually.ReturnsAsync(async () => (await queue.ReceiveMessagesAsync(1)).Value.FirstOrDefault(), m => m is not null, what: $"a message on {queueName}");
        await queue.DeleteMessageAsync(message!.MessageId, message.PopReceipt);
        return message.Body.ToString();
    }
}

/// <summary>How the Function app finds its storage: the Functions host's own settings, identity first; never the emulator in Azure.</summary>
public sealed class FunctionStorageSettingsTests
{
    [Fact]
    public void IdentityConnectionSettings_BecomeTheEnginesStorageEndpoints()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["AzureWebJobsStorage:accountName"] = "stormprod",
            ["AzureWebJobsStorage:tableServiceUri"] = "https://stormprod.table.core.windows.net/",
            ["AzureWebJobsStorage:credential"] = "managedidentity",
            ["AzureWebJobsStorage:clientId"] = "11111111-2222-3333-4444-555555555555",
        }).Build();

        StormFunctionServices.UseWebJobsStorage(configuration);
        var options = configuration.GetSection(ServerlessStorm.Azure.AzureStorageOptions.Section).Get<ServerlessStorm.Azure.AzureStorageOptions>()!;

        Assert.Equal(new Uri("https://stormprod.blob.core.windows.net"), options.BlobServiceUri);
        Assert.Equal(new Uri("https://stormprod.table.core.windows.net/"), options.TableServiceUri);
        Assert.Equal(("managedidentity", "11111111-2222-3333-4444-555555555555"), (options.Credential, options.ClientId));
        Assert.False(options.IsEmulator);
    }

    [Fact]
    public async Task InAzure_WithoutStorageSettings_TheAppRefusesToStart_NamingThem()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new Microsoft.Extensions.Hosting.HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["WEBSITE_INSTANCE_ID"] = "0123456789abcdef",
            ["Storm:Datastore:EncryptionKey"] = Convert.ToBase64String(new byte[32]),
        });
        builder.Services.AddLogging().AddStormFunctions(builder.Configuration);
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("storage is not configured: this app runs in Azure but would use the local emulator", error.Message, StringComparison.Ordinal);
        Assert.Contains("AzureWebJobsStorage__blobServiceUri", error.Message, StringComparison.Ordinal);
    }
}
