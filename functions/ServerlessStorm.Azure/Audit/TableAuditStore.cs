using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine;
using ServerlessStorm.Engine.Executions;

using ServerlessStorm.Engine.Diagnostics;

namespace ServerlessStorm.Azure.Audit;

/// <summary>
/// The audit trail in one Azure Table, <c>{prefix}Audit</c>, laid out so that writes batch and no partition is hot:
/// <list type="bullet">
/// <item>Executions: PartitionKey <c>x|{yyyyMMdd}|{shard}</c> (the day in the execution id, the id's hash modulo
/// <see cref="AzureStorageOptions.AuditShards"/>), RowKey <c>{inverted seconds}|{id}</c>; the id alone locates the
/// row, and a partition read in RowKey order lists executions newest first. Updated under the row's ETag.</item>
/// <item>Trigger instances: PartitionKey <c>i|{yyyyMMdd}|{shard}</c>, RowKey <c>{inverted seconds}|{id}</c> of their
/// occurrence time.</item>
/// <item>Traces: PartitionKey <c>g|{shard}</c> (the trace tag's hash), RowKeys starting <c>{trace tag}|</c>: the
/// rule enforcements themselves (<c>…|f|{trigger instance}|{rule}</c>, naming the execution they caused) and a row
/// pointing at each trigger instance (<c>…|i|{id}</c>) and at each execution no enforcement names (<c>…|e|{id}</c>:
/// runs, re-runs, retries); a trace is one range read.</item>
/// <item>Sender-chosen trigger-instance ids (delivery ids): PartitionKey <c>d|{shard}</c>, RowKey the id, with the
/// time it was first accepted.</item>
/// </list>
/// Writes go through a <see cref="TableWriteBatcher"/>: concurrent writes to one partition leave as one
/// entity-group transaction. JSON values longer than a Table property can hold go to Blob Storage (<see cref="PayloadBlobs"/>).
/// </summary>
public sealed class TableAuditStore : IAuditStore
{
    private readonly TableClient _table;
    private readonly TableWriteBatcher _writes;
    private readonly PayloadBlobs _blobs;
    private readonly TimeProvider _time;
    private readonly int _shards;
    private readonly Lazy<Task> _tableCreated;

    public TableAuditStore(IOptions<AzureStorageOptions> options, TimeProvider time)
    {
        var settings = options.Value;
        var clients = new StorageClients(settings);
        _table = clients.Tables.GetTableClient(clients.Names.AuditTable);
        _writes = new TableWriteBatcher(_table, settings.AuditBatching, Math.Max(1, settings.AuditWritesInFlight));
        _blobs = new PayloadBlobs(clients.Blobs.GetBlobContainerClient(clients.Names.AuditPayloadsContainer), settings.InlineLimit);
        _time = time;
        _shards = Math.Clamp(settings.AuditShards, 1, 64);
        _tableCreated = new(() => _table.CreateIfNotExistsAsync());
    }

    /// <summary>Requests sent and entities written by the audit so far.</summary>
    public (long Requests, long Entities) WriteCounts => _writes.Counts;

    /// <summary>Creates the table now rather than on first use.</summary>
    public Task InitializeAsync() => _tableCreated.Value;

    public async Task RecordTriggerInstanceAsync(TriggerInstanceRecord record, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("trigger_instance", record.Id);
        await _tableCreated.Value;
        var (partition, row) = TriggerInstanceKey(record.Id, record.OccurredAt);
        var entity = new TableEntity(partition, row)
        {
            ["Id"] = record.Id,
            ["TriggerType"] = record.TriggerType,
            ["TriggerParameters"] = record.TriggerParameters?.ToJsonString(),
            ["Payload"] = await _blobs.StoreAsync(record.Payload?.ToJsonString() ?? "null", $"triggerinstances/{record.Id}/payload.json", cancellationToken),
            ["OccurredAt"] = record.OccurredAt,
            ["TraceTag"] = record.TraceTag,
            ["Status"] = record.Status,
            ["Reason"] = record.Reason,
            ["User"] = record.User,
        };
        await Task.WhenAll(
            Upsert(entity, cancellationToken),
            Upsert(TraceRow(record.TraceTag, $"i|{record.Id}", new() { ["At"] = record.OccurredAt }), cancellationToken));
    }

    public async Task<DateTimeOffset> FirstAcceptedAsync(string triggerInstanceId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await _tableCreated.Value;
        var (partition, row) = DeliveryKey(triggerInstanceId);
        try
        {
            await _writes.WriteAsync(new TableTransactionAction(TableTransactionActionType.Add, new TableEntity(partition, row) { ["At"] = now }), cancellationToken);
            return now;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            var first = await _table.GetEntityAsync<TableEntity>(partition, row, ["At"], cancellationToken);
            return first.Value.GetDateTimeOffset("At") ?? now;
        }
    }

    public async Task UpdateTriggerInstanceStatusAsync(string id, DateTimeOffset occurredAt, string status, string? reason, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("trigger_instance_status", id);
        await _tableCreated.Value;
        var (partition, row) = TriggerInstanceKey(id, occurredAt);
        try
        {
            await _writes.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateMerge,
                new TableEntity(partition, row) { ["Status"] = status, ["Reason"] = reason }, ETag.All), cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Never recorded: nothing to update.
        }
    }

    public async Task RecordRuleEnforcementAsync(RuleEnforcementRecord record, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("rule_enforcement", record.TriggerInstanceId);
        await _tableCreated.Value;
        await Upsert(TraceRow(record.TraceTag, $"f|{record.TriggerInstanceId}|{record.RuleRef}", new()
        {
            ["TriggerInstanceId"] = record.TriggerInstanceId,
            ["RuleRef"] = record.RuleRef,
            ["ExecutionId"] = record.ExecutionId,
            ["Status"] = record.Status,
            ["FailureReason"] = record.FailureReason,
            ["User"] = record.User,
            ["EnforcedAt"] = record.EnforcedAt,
        }), cancellationToken);
    }

    public async Task<bool> TryCreateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("execution", record.Id);
        await _tableCreated.Value;
        var entity = await ToEntityAsync(record, cancellationToken);
        // A rule's first execution is found through its enforcement row, which names it; any other needs a trace row
        // of its own. That row is harmless when the execution exists already, so both writes leave together.
        var pointer = record.RuleRef is not null && record.ReRunOf is null
            ? Task.CompletedTask
            : Upsert(TraceRow(record.TraceTag, $"e|{record.Id}", new()), cancellationToken);
        try
        {
            var response = await _writes.WriteAsync(new TableTransactionAction(TableTransactionActionType.Add, entity), cancellationToken);
            record.Version = response.Headers.ETag?.ToString();
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }
        finally
        {
            await pointer;
        }
    }

    public async Task<ExecutionRecord?> GetExecutionAsync(string id, CancellationToken cancellationToken)
    {
        if (ExecutionKey(id) is not var (partition, row))
        {
            return null;
        }

        await _tableCreated.Value;
        var response = await _table.GetEntityIfExistsAsync<TableEntity>(partition, row, cancellationToken: cancellationToken);
        return response.HasValue ? await FromEntityAsync(response.Value!, cancellationToken) : null;
    }

    public async Task<bool> TryUpdateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("execution_update", record.Id);
        await _tableCreated.Value;
        try
        {
            var response = await _writes.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateReplace,
                await ToEntityAsync(record, cancellationToken), record.Version is null ? ETag.All : new ETag(record.Version)), cancellationToken);
            record.Version = response.Headers.ETag?.ToString();
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return false;
        }
    }

    public async Task<IReadOnlyList<ExecutionRecord>> QueryExecutionsAsync(AuditQuery query, CancellationToken cancellationToken) =>
        await Task.WhenAll((await QueryRowsAsync(ExecutionsKind, query, cancellationToken)).Select(e => FromEntityAsync(e, cancellationToken)));

    public async Task<IReadOnlyList<TriggerInstanceRecord>> QueryTriggerInstancesAsync(AuditQuery query, CancellationToken cancellationToken) =>
        await Task.WhenAll((await QueryRowsAsync(TriggerInstancesKind, query, cancellationToken)).Select(e => TriggerInstanceFromEntityAsync(e, cancellationToken)));

    public async Task<AuditTrace> GetTraceAsync(string traceTag, CancellationToken cancellationToken)
    {
        await _tableCreated.Value;
        var triggerInstances = new List<Task<TriggerInstanceRecord?>>();
        var enforcements = new List<RuleEnforcementRecord>();
        var executionIds = new HashSet<string>(StringComparer.Ordinal);
        var prefix = TraceKeyPrefix(traceTag);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {TracePartition(traceTag)} and RowKey ge {prefix} and RowKey lt {prefix + "~"}");
        await foreach (var row in _table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            var key = row.RowKey[prefix.Length..];
            var id = key[2..];
            switch (key[0])
            {
                case 'i':
                    triggerInstances.Add(GetTriggerInstanceAsync(id, row.GetDateTimeOffset("At") ?? DateTimeOffset.MinValue, cancellationToken));
                    break;
                case 'e':
                    executionIds.Add(id);
                    break;
                case 'f':
                    if (row.GetString("ExecutionId") is { } caused)
                    {
                        executionIds.Add(caused);
                    }

                    enforcements.Add(new RuleEnforcementRecord(row.GetString("TriggerInstanceId"), row.GetString("RuleRef"), row.GetString("ExecutionId"),
                        row.GetString("Status"), row.GetString("FailureReason"), row.GetDateTimeOffset("EnforcedAt") ?? DateTimeOffset.MinValue, traceTag, row.GetString("User")));
                    break;
            }
        }

        return new AuditTrace(
            traceTag,
            [.. (await Task.WhenAll(triggerInstances)).OfType<TriggerInstanceRecord>().OrderBy(t => t.OccurredAt)],
            [.. enforcements.OrderBy(e => e.EnforcedAt)],
            [.. (await Task.WhenAll(executionIds.Select(id => GetExecutionAsync(id, cancellationToken)))).OfType<ExecutionRecord>().OrderBy(e => e.StartTimestamp)]);
    }

    private const char ExecutionsKind = 'x';
    private const char TriggerInstancesKind = 'i';

    private Task Upsert(TableEntity entity, CancellationToken cancellationToken) =>
        _writes.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpsertReplace, entity), cancellationToken);

    // Newest first across the shards: day by day from the window's end, each day's shards read in parallel and merged.
    private async Task<List<TableEntity>> QueryRowsAsync(char kind, AuditQuery query, CancellationToken cancellationToken)
    {
        await _tableCreated.Value;
        var (from, to) = query.Window(_time.GetUtcNow());
        var newest = TimeKey(to) + "|";
        var oldest = TimeKey(from) + "|~";
        var rows = new List<TableEntity>();
        for (var day = to.UtcDateTime.Date; day >= from.UtcDateTime.Date && rows.Count < query.Limit; day = day.AddDays(-1))
        {
            var shards = await Task.WhenAll(Enumerable.Range(0, _shards).Select(async shard =>
            {
                var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition(kind, day, shard)} and RowKey ge {newest} and RowKey lt {oldest}");
                if (query.Status is not null)
                {
                    filter += " and " + TableClient.CreateQueryFilter($"Status eq {query.Status}");
                }

                var found = new List<TableEntity>();
                await foreach (var row in _table.QueryAsync<TableEntity>(filter, maxPerPage: query.Limit, cancellationToken: cancellationToken))
                {
                    found.Add(row);
                    if (found.Count >= query.Limit)
                    {
                        break;
                    }
                }

                return found;
            }));
            rows.AddRange(shards.SelectMany(s => s).OrderBy(r => r.RowKey, StringComparer.Ordinal).Take(query.Limit - rows.Count));
        }

        return rows;
    }

    private async Task<TriggerInstanceRecord?> GetTriggerInstanceAsync(string id, DateTimeOffset occurredAt, CancellationToken cancellationToken)
    {
        var (partition, row) = TriggerInstanceKey(id, occurredAt);
        var response = await _table.GetEntityIfExistsAsync<TableEntity>(partition, row, cancellationToken: cancellationToken);
        return response.HasValue ? await TriggerInstanceFromEntityAsync(response.Value!, cancellationToken) : null;
    }

    private async Task<TriggerInstanceRecord> TriggerInstanceFromEntityAsync(TableEntity e, CancellationToken cancellationToken) => new()
    {
        Id = e.GetString("Id"),
        TriggerType = e.GetString("TriggerType"),
        TriggerParameters = ParseJson(e.GetString("TriggerParameters")) as JsonObject,
        Payload = ParseJson(await _blobs.LoadAsync(e.GetString("Payload"), cancellationToken)),
        OccurredAt = e.GetDateTimeOffset("OccurredAt") ?? DateTimeOffset.MinValue,
        TraceTag = e.GetString("TraceTag"),
        Status = e.GetString("Status"),
        Reason = e.GetString("Reason"),
        User = e.GetString("User"),
    };

    private async Task<TableEntity> ToEntityAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        var (partition, row) = ExecutionKey(record.Id) ?? throw new ArgumentException($"'{record.Id}' is not an execution id (24 hex digits, the first 8 its creation time)", nameof(record));
        return await ToEntityAsync(record, partition, row, cancellationToken);
    }

    private async Task<TableEntity> ToEntityAsync(ExecutionRecord record, string partition, string row, CancellationToken cancellationToken) => new(partition, row)
    {
        ["Id"] = record.Id,
        ["ActionRef"] = record.ActionRef,
        ["User"] = record.User,
        ["RunnerType"] = record.RunnerType,
        ["TraceTag"] = record.TraceTag,
        ["TriggerInstanceId"] = record.TriggerInstanceId,
        ["RuleRef"] = record.RuleRef,
        ["Parameters"] = await _blobs.StoreAsync(record.Parameters.ToJsonString(), $"executions/{record.Id}/parameters.json", cancellationToken),
        ["SealedParameters"] = await _blobs.StoreAsync(record.SealedParameters?.ToJsonString(), $"executions/{record.Id}/sealed-parameters.json", cancellationToken),
        ["ReRunOf"] = record.ReRunOf,
        ["ReRunTasks"] = record.ReRunTasks is null ? null : JsonSerializer.Serialize(record.ReRunTasks),
        ["RetryCount"] = record.RetryCount,
        ["ParentId"] = record.ParentId,
        ["WorkflowTask"] = record.WorkflowTask,
        ["Status"] = record.Status,
        ["History"] = JsonSerializer.Serialize(record.History.Select(h => new[] { h.Status, h.At.ToString("O", CultureInfo.InvariantCulture) })),
        ["StartTimestamp"] = record.StartTimestamp,
        ["EndTimestamp"] = record.EndTimestamp,
        ["Result"] = await _blobs.StoreAsync(record.Result?.ToJsonString(), $"executions/{record.Id}/result.json", cancellationToken),
        ["SealedResult"] = await _blobs.StoreAsync(record.SealedResult?.ToJsonString(), $"executions/{record.Id}/sealed-result.json", cancellationToken),
        ["Error"] = await _blobs.StoreAsync(record.Error, $"executions/{record.Id}/error.txt", cancellationToken),
        ["Worker"] = record.Worker,
    };

    private async Task<ExecutionRecord> FromEntityAsync(TableEntity e, CancellationToken cancellationToken)
    {
        var history = JsonSerializer.Deserialize<string[][]>(e.GetString("History") ?? "[]") ?? [];
        return new ExecutionRecord
        {
            Id = e.GetString("Id"),
            ActionRef = e.GetString("ActionRef"),
            RunnerType = e.GetString("RunnerType"),
            TraceTag = e.GetString("TraceTag"),
            TriggerInstanceId = e.GetString("TriggerInstanceId"),
            RuleRef = e.GetString("RuleRef"),
            User = e.GetString("User"),
            Parameters = ParseJson(await _blobs.LoadAsync(e.GetString("Parameters"), cancellationToken)) as JsonObject ?? [],
            SealedParameters = ParseJson(await _blobs.LoadAsync(e.GetString("SealedParameters"), cancellationToken)) as JsonObject,
            ReRunOf = e.GetString("ReRunOf"),
            ReRunTasks = e.GetString("ReRunTasks") is { } tasks ? JsonSerializer.Deserialize<string[]>(tasks) : null,
            RetryCount = e.GetInt32("RetryCount") ?? 0,
            ParentId = e.GetString("ParentId"),
            WorkflowTask = e.GetString("WorkflowTask"),
            Status = e.GetString("Status"),
            History = [.. history.Select(h => new StatusChange(h[0], DateTimeOffset.Parse(h[1], CultureInfo.InvariantCulture)))],
            StartTimestamp = e.GetDateTimeOffset("StartTimestamp") ?? DateTimeOffset.MinValue,
            EndTimestamp = e.GetDateTimeOffset("EndTimestamp"),
            Result = ParseJson(await _blobs.LoadAsync(e.GetString("Result"), cancellationToken)),
            SealedResult = ParseJson(await _blobs.LoadAsync(e.GetString("SealedResult"), cancellationToken)),
            Error = await _blobs.LoadAsync(e.GetString("Error"), cancellationToken),
            Worker = e.GetString("Worker"),
            Version = e.ETag.ToString(),
        };
    }

    private (string Partition, string Row)? ExecutionKey(string id) =>
        IsKeySafe(id) && StormIds.TryGetTimestamp(id, out var at) ? (Partition(ExecutionsKind, at.UtcDateTime.Date, Shard(id)), $"{TimeKey(at)}|{id}") : null;

    private (string Partition, string Row) TriggerInstanceKey(string id, DateTimeOffset occurredAt) =>
        (Partition(TriggerInstancesKind, occurredAt.UtcDateTime.Date, Shard(id)), $"{TimeKey(occurredAt)}|{id}");

    private (string Partition, string Row) DeliveryKey(string triggerInstanceId) =>
        (string.Create(CultureInfo.InvariantCulture, $"d|{Shard(triggerInstanceId):D2}"), triggerInstanceId);

    private static string Partition(char kind, DateTime day, int shard) =>
        string.Create(CultureInfo.InvariantCulture, $"{kind}|{day:yyyyMMdd}|{shard:D2}");

    // Newest first: the key counts down as time goes on (whole seconds, as in the ids).
    private static string TimeKey(DateTimeOffset at) =>
        (uint.MaxValue - (uint)Math.Clamp(at.ToUnixTimeSeconds(), 0, uint.MaxValue)).ToString("x8", CultureInfo.InvariantCulture);

    // A stable hash (string.GetHashCode differs per process): every host must find the same shard.
    private int Shard(string id) => (int)(System.IO.Hashing.XxHash32.HashToUInt32(System.Text.Encoding.UTF8.GetBytes(id)) % (uint)_shards);

    private string TracePartition(string traceTag) => string.Create(CultureInfo.InvariantCulture, $"g|{Shard(traceTag):D2}");

    // The tag is escaped so that no tag's prefix is the start of another's ('|' ends it).
    private static string TraceKeyPrefix(string traceTag) => traceTag.Replace("%", "%25", StringComparison.Ordinal).Replace("|", "%7C", StringComparison.Ordinal) + "|";

    private TableEntity TraceRow(string traceTag, string key, TableEntity properties)
    {
        var row = new TableEntity(TracePartition(traceTag), TraceKeyPrefix(traceTag) + key);
        foreach (var (name, value) in properties)
        {
            row[name] = value;
        }

        return row;
    }

    private static bool IsKeySafe(string key) => key.Length is > 0 and <= 512 && !key.Any(c => char.IsControl(c) || c is '/' or '\\' or '#' or '?');

    private static JsonNode? ParseJson(string? text) => text is null ? null : JsonNode.Parse(text);
}
