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
/// occurrence time; their rule enforcements beside them, <c>{inverted seconds}|{id}|f|{rule}</c> (naming the execution
/// each caused), so a trigger instance and what it caused are one range read.</item>
/// <item>Traces: PartitionKey <c>g|{shard}</c> (the trace tag's hash), RowKeys starting <c>{trace tag}|</c>: a row
/// pointing at each trigger instance (<c>…|i|{id}</c>) and at each execution no enforcement names (<c>…|e|{id}</c>:
/// runs, re-runs, retries); a trace is one range read and one more per trigger instance.</item>
/// <item>Sender-chosen trigger-instance ids (delivery ids): PartitionKey <c>d|{shard}</c>, RowKey the id, with the
/// time it was first accepted.</item>
/// </list>
/// Payload blobs are named <c>{yyyyMMdd}/{executions|triggerinstances}/{id}/…</c> after their record's day. So retention
/// deletes a day by reading that day's partitions and blob folder and deleting what they hold, and the trace and
/// delivery rows those records name; nothing else is read (<see cref="PurgeDayAsync"/>).
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
            ["Payload"] = await _blobs.StoreAsync(record.Payload?.ToJsonString() ?? "null", $"{BlobFolder(TriggerInstancesFolder, record.OccurredAt, record.Id)}payload.json", cancellationToken),
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
        var (partition, row) = TriggerInstanceKey(record.TriggerInstanceId, record.TriggerInstanceOccurredAt ?? record.EnforcedAt);
        await Upsert(new TableEntity(partition, EnforcementRowKey(row, record.RuleRef))
        {
            ["TraceTag"] = record.TraceTag,
            ["TriggerInstanceOccurredAt"] = record.TriggerInstanceOccurredAt,
            ["TriggerInstanceId"] = record.TriggerInstanceId,
            ["RuleRef"] = record.RuleRef,
            ["ExecutionId"] = record.ExecutionId,
            ["Status"] = record.Status,
            ["FailureReason"] = record.FailureReason,
            ["User"] = record.User,
            ["EnforcedAt"] = record.EnforcedAt,
        }, cancellationToken);
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
        await Task.WhenAll((await QueryRowsAsync(TriggerInstancesKind, query, cancellationToken, include: row => !IsEnforcementRow(row)))
            .Select(e => TriggerInstanceFromEntityAsync(e, cancellationToken)));

    public async Task<AuditTrace> GetTraceAsync(string traceTag, CancellationToken cancellationToken)
    {
        await _tableCreated.Value;
        var triggerInstances = new List<Task<(TriggerInstanceRecord? Record, List<RuleEnforcementRecord> Enforcements)>>();
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
            }
        }

        var found = await Task.WhenAll(triggerInstances);
        var enforcements = found.SelectMany(f => f.Enforcements).Where(e => e.TraceTag == traceTag).ToList();
        executionIds.UnionWith(enforcements.Select(e => e.ExecutionId).OfType<string>());
        return new AuditTrace(
            traceTag,
            [.. found.Select(f => f.Record).OfType<TriggerInstanceRecord>().OrderBy(t => t.OccurredAt)],
            [.. enforcements.OrderBy(e => e.EnforcedAt)],
            [.. (await Task.WhenAll(executionIds.Select(id => GetExecutionAsync(id, cancellationToken)))).OfType<ExecutionRecord>().OrderBy(e => e.StartTimestamp)]);
    }

    public async Task<IReadOnlyList<DateOnly>> DaysBeforeAsync(DateOnly before, CancellationToken cancellationToken)
    {
        await _tableCreated.Value;
        var days = new SortedSet<DateOnly>();
        foreach (var kind in new[] { ExecutionsKind, TriggerInstancesKind })
        {
            // The oldest partition of the kind, then the oldest after that day, and so on: one small read per day held.
            var from = $"{kind}|";
            var end = string.Create(CultureInfo.InvariantCulture, $"{kind}|{before:yyyyMMdd}");
            while (true)
            {
                var filter = TableClient.CreateQueryFilter($"PartitionKey ge {from} and PartitionKey lt {end}");
                string? oldest = null;
                await foreach (var row in _table.QueryAsync<TableEntity>(filter, maxPerPage: 1, select: ["PartitionKey"], cancellationToken: cancellationToken))
                {
                    oldest = row.PartitionKey;
                    break;
                }

                if (oldest is null || !DateOnly.TryParseExact(oldest.AsSpan(2, 8), "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
                {
                    break;
                }

                days.Add(day);
                from = string.Create(CultureInfo.InvariantCulture, $"{kind}|{day.AddDays(1):yyyyMMdd}");
            }
        }

        return [.. days];
    }

    public async Task<AuditDayPurge> PurgeDayAsync(DateOnly day, CancellationToken cancellationToken)
    {
        await _tableCreated.Value;
        var date = day.ToDateTime(TimeOnly.MinValue);
        var deletes = new TableWriteBatcher(_table, batched: true, maxInFlight: PurgeWritesInFlight);
        var deleting = new List<Task>();
        void Delete(string partition, string row) => deleting.Add(DeleteAsync(deletes, partition, row, cancellationToken));

        // The day's executions: what has not finished stays, with its workflow's and the trigger instances that caused it.
        var executions = await ReadDayAsync(ExecutionsKind, date, ["Id", "Status", "ParentId", "TraceTag", "RuleRef", "ReRunOf", "TriggerInstanceId"], cancellationToken);
        var kept = await AuditRetention.KeptExecutionsAsync(
            [.. executions.Select(e => new ExecutionState(e.GetString("Id"), e.GetString("Status") ?? "", e.GetString("ParentId")))],
            LookUpExecutionStateAsync, cancellationToken);
        var keptCauses = new HashSet<string>(StringComparer.Ordinal);
        var purgedExecutions = 0;
        foreach (var execution in executions)
        {
            var id = execution.GetString("Id");
            if (kept.Contains(id))
            {
                if (execution.GetString("TriggerInstanceId") is { } cause)
                {
                    keptCauses.Add(cause);
                }

                continue;
            }

            purgedExecutions++;
            Delete(execution.PartitionKey, execution.RowKey);
            if (execution.GetString("RuleRef") is null || execution.GetString("ReRunOf") is not null)
            {
                var pointer = TraceRow(execution.GetString("TraceTag") ?? "", $"e|{id}", new());
                Delete(pointer.PartitionKey, pointer.RowKey);
            }
        }

        // The day's trigger instances with their rule enforcements, their trace pointers and their delivery claims.
        var purgedTriggerInstances = 0;
        var purgedEnforcements = 0;
        foreach (var row in await ReadDayAsync(TriggerInstancesKind, date, ["Id", "TraceTag", "TriggerType", "TriggerInstanceId", "RuleRef"], cancellationToken))
        {
            var enforcement = IsEnforcementRow(row);
            var id = enforcement ? row.GetString("TriggerInstanceId") : row.GetString("Id");
            if (keptCauses.Contains(id))
            {
                continue;
            }

            Delete(row.PartitionKey, row.RowKey);
            if (enforcement)
            {
                purgedEnforcements++;
                continue;
            }

            purgedTriggerInstances++;
            var pointer = TraceRow(row.GetString("TraceTag") ?? "", $"i|{id}", new());
            Delete(pointer.PartitionKey, pointer.RowKey);
            foreach (var claim in AuditRetention.DeliveryClaims(id, row.GetString("TriggerType")))
            {
                var (partition, key) = DeliveryKey(claim);
                Delete(partition, key);
            }
        }

        var payloads = await _blobs.PurgeAsync(string.Create(CultureInfo.InvariantCulture, $"{date:yyyyMMdd}/"),
            name => IsKeptPayload(name, kept, keptCauses), cancellationToken);
        await Task.WhenAll(deleting);
        return new AuditDayPurge(day, purgedTriggerInstances, purgedEnforcements, purgedExecutions, payloads, kept);
    }

    // Deletes in flight at once while purging: the day's partitions are many, and each delete is cheap.
    private const int PurgeWritesInFlight = 16;

    private static async Task DeleteAsync(TableWriteBatcher deletes, string partition, string row, CancellationToken cancellationToken)
    {
        try
        {
            await deletes.WriteAsync(new TableTransactionAction(TableTransactionActionType.Delete, new TableEntity(partition, row), ETag.All), cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Never written (a claim the instance did not make, a pointer lost to a crash) or already purged.
        }
    }

    private async Task<ExecutionState?> LookUpExecutionStateAsync(string id, CancellationToken cancellationToken)
    {
        if (ExecutionKey(id) is not var (partition, row))
        {
            return null;
        }

        var found = await _table.GetEntityIfExistsAsync<TableEntity>(partition, row, ["Status", "ParentId"], cancellationToken);
        return found.HasValue ? new ExecutionState(id, found.Value!.GetString("Status") ?? "", found.Value.GetString("ParentId")) : null;
    }

    // Every shard's partition of one kind and day, with only the columns named.
    private async Task<List<TableEntity>> ReadDayAsync(char kind, DateTime day, string[] columns, CancellationToken cancellationToken)
    {
        var shards = await Task.WhenAll(Enumerable.Range(0, _shards).Select(async shard =>
        {
            var rows = new List<TableEntity>();
            var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition(kind, day, shard)}");
            await foreach (var row in _table.QueryAsync<TableEntity>(filter, select: [.. columns, "PartitionKey", "RowKey"], cancellationToken: cancellationToken))
            {
                rows.Add(row);
            }

            // Oldest first: the order they were written in.
            rows.Reverse();
            return rows;
        }));
        return [.. shards.SelectMany(s => s)];
    }

    // "{day}/{kind}/{id}/{file}": a payload stays with its record.
    private static bool IsKeptPayload(string name, HashSet<string> keptExecutions, HashSet<string> keptTriggerInstances)
    {
        var parts = name.Split('/', 4);
        return parts.Length == 4 && (parts[1] == ExecutionsFolder ? keptExecutions : keptTriggerInstances).Contains(parts[2]);
    }

    private const char ExecutionsKind = 'x';
    private const char TriggerInstancesKind = 'i';

    private Task Upsert(TableEntity entity, CancellationToken cancellationToken) =>
        _writes.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpsertReplace, entity), cancellationToken);

    // Newest first across the shards: day by day from the window's end, each day's shards read in parallel and merged.
    private async Task<List<TableEntity>> QueryRowsAsync(char kind, AuditQuery query, CancellationToken cancellationToken, Func<TableEntity, bool>? include = null)
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
                    if (include?.Invoke(row) == false)
                    {
                        continue;
                    }

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

    // The trigger instance's row and its enforcements' rows follow one another: one range read.
    private async Task<(TriggerInstanceRecord? Record, List<RuleEnforcementRecord> Enforcements)> GetTriggerInstanceAsync(string id, DateTimeOffset occurredAt, CancellationToken cancellationToken)
    {
        var (partition, row) = TriggerInstanceKey(id, occurredAt);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {partition} and RowKey ge {row} and RowKey lt {row + "|~"}");
        TriggerInstanceRecord? record = null;
        var enforcements = new List<RuleEnforcementRecord>();
        await foreach (var entity in _table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            if (entity.RowKey == row)
            {
                record = await TriggerInstanceFromEntityAsync(entity, cancellationToken);
            }
            else if (IsEnforcementRow(entity) && entity.GetString("TriggerInstanceId") == id)
            {
                enforcements.Add(new RuleEnforcementRecord(id, entity.GetString("RuleRef"), entity.GetString("ExecutionId"),
                    entity.GetString("Status"), entity.GetString("FailureReason"), entity.GetDateTimeOffset("EnforcedAt") ?? DateTimeOffset.MinValue,
                    entity.GetString("TraceTag"), entity.GetString("User"), entity.GetDateTimeOffset("TriggerInstanceOccurredAt")));
            }
        }

        return (record, enforcements);
    }

    private static bool IsEnforcementRow(TableEntity row) => row.ContainsKey("RuleRef");

    private static string EnforcementRowKey(string triggerInstanceRow, string ruleRef) => $"{triggerInstanceRow}|f|{ruleRef}";

    private static string BlobFolder(string kind, DateTimeOffset day, string id) =>
        string.Create(CultureInfo.InvariantCulture, $"{day.UtcDateTime:yyyyMMdd}/{kind}/{id}/");

    private const string ExecutionsFolder = "executions";
    private const string TriggerInstancesFolder = "triggerinstances";

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

    private async Task<TableEntity> ToEntityAsync(ExecutionRecord record, string partition, string row, CancellationToken cancellationToken)
    {
        var folder = BlobFolder(ExecutionsFolder, StormIds.TryGetTimestamp(record.Id, out var created) ? created : record.StartTimestamp, record.Id);
        return new(partition, row)
        {
        ["Id"] = record.Id,
        ["ActionRef"] = record.ActionRef,
        ["User"] = record.User,
        ["RunnerType"] = record.RunnerType,
        ["TraceTag"] = record.TraceTag,
        ["TriggerInstanceId"] = record.TriggerInstanceId,
        ["RuleRef"] = record.RuleRef,
        ["Parameters"] = await _blobs.StoreAsync(record.Parameters.ToJsonString(), folder + "parameters.json", cancellationToken),
        ["SealedParameters"] = await _blobs.StoreAsync(record.SealedParameters?.ToJsonString(), folder + "sealed-parameters.json", cancellationToken),
        ["ReRunOf"] = record.ReRunOf,
        ["ReRunTasks"] = record.ReRunTasks is null ? null : JsonSerializer.Serialize(record.ReRunTasks),
        ["RetryCount"] = record.RetryCount,
        ["ParentId"] = record.ParentId,
        ["WorkflowTask"] = record.WorkflowTask,
        ["Status"] = record.Status,
        ["History"] = JsonSerializer.Serialize(record.History.Select(h => new[] { h.Status, h.At.ToString("O", CultureInfo.InvariantCulture) })),
        ["StartTimestamp"] = record.StartTimestamp,
        ["EndTimestamp"] = record.EndTimestamp,
        ["Result"] = await _blobs.StoreAsync(record.Result?.ToJsonString(), folder + "result.json", cancellationToken),
        ["SealedResult"] = await _blobs.StoreAsync(record.SealedResult?.ToJsonString(), folder + "sealed-result.json", cancellationToken),
        ["Error"] = await _blobs.StoreAsync(record.Error, folder + "error.txt", cancellationToken),
        ["Worker"] = record.Worker,
        };
    }

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

    // The id is escaped so that a trigger instance's row key never reads as another's enforcement row.
    private (string Partition, string Row) TriggerInstanceKey(string id, DateTimeOffset occurredAt) =>
        (Partition(TriggerInstancesKind, occurredAt.UtcDateTime.Date, Shard(id)), $"{TimeKey(occurredAt)}|{Escape(id)}");

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
    private static string TraceKeyPrefix(string traceTag) => Escape(traceTag) + "|";

    private static string Escape(string key) => key.Replace("%", "%25", StringComparison.Ordinal).Replace("|", "%7C", StringComparison.Ordinal);

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
