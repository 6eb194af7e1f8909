using Azure;
using Azure.Data.Tables;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Azure.Executions;

/// <summary>
/// Workers that share a bus (Storage Queues, Service Bus) say they are alive in the table <c>{prefix}Workers</c>: one row
/// per worker, renewed every quarter <see cref="Lease"/>. A worker whose row has lapsed (or was removed at its clean
/// stop) is gone. One write per worker every few seconds, whatever the number of executions it runs.
/// </summary>
public sealed class TableWorkerRegistry : IWorkerRegistry, IHostedService, IAsyncDisposable
{
    private const string Partition = "w";

    private readonly TableClient _table;
    private readonly TimeProvider _time;
    private readonly ILogger<TableWorkerRegistry> _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lazy<Task> _created;
    private Task _heartbeat = Task.CompletedTask;

    public TableWorkerRegistry(IOptions<AzureStorageOptions> options, TimeProvider time, ILogger<TableWorkerRegistry> logger)
    {
        _table = new StorageClients(options.Value).Tables.GetTableClient(options.Value.Names.WorkersTable);
        _time = time;
        _logger = logger;
        _created = new(() => _table.CreateIfNotExistsAsync());
    }

    public string Self { get; } = IWorkerRegistry.NewId();

    /// <summary>20 s, as the Storage Queue visibility: a killed worker's executions are taken over when its queue messages come back.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(20);

    public async Task<bool> IsGoneAsync(string worker, CancellationToken cancellationToken)
    {
        if (worker == Self)
        {
            return false;
        }

        await _created.Value;
        var row = await _table.GetEntityIfExistsAsync<TableEntity>(Partition, worker, ["AliveUntil"], cancellationToken);
        return !row.HasValue || row.Value!.GetDateTimeOffset("AliveUntil") is not { } until || until < _time.GetUtcNow();
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await BeatAsync(cancellationToken);
        _heartbeat = Task.Run(HeartbeatAsync, CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync();
        await _heartbeat;
        try
        {
            await _table.DeleteEntityAsync(Partition, Self, ETag.All, cancellationToken);
        }
        catch (Exception ex) when (ex is RequestFailedException or OperationCanceledException)
        {
            // Its lease runs out by itself.
        }
    }

    private async Task HeartbeatAsync()
    {
        using var ticker = new PeriodicTimer(Lease / 4, _time);
        try
        {
            while (await ticker.WaitForNextTickAsync(_stop.Token))
            {
                try
                {
                    await BeatAsync(_stop.Token);
                }
                catch (RequestFailedException ex)
                {
                    _logger.WorkerLeaseNotRenewed(Self, ex.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task BeatAsync(CancellationToken cancellationToken)
    {
        await _created.Value;
        await _table.UpsertEntityAsync(new TableEntity(Partition, Self) { ["AliveUntil"] = _time.GetUtcNow() + Lease }, TableUpdateMode.Replace, cancellationToken);
    }

    public ValueTask DisposeAsync()
    {
        _stop.Dispose();
        return ValueTask.CompletedTask;
    }
}
