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
/// The audit trail in Azure Tables, laid out so that writes batch, no partition is hot and a day leaves whole:
/// <list type="bullet">
/// <item>A table a day, <c>{prefix}Audit{yyyyMMdd}</c>, made on the day's first write, holds that day's records.
/// Executions: PartitionKey <c>x|{yyyyMMdd}|{shard}</c> (the day in the execution id, the id's hash modulo
/// <see cref="AzureStorageOptions.AuditShards"/>), RowKey <c>{inverted seconds}|{id}</c>; the id alone locates the
/// row, and a partition read in RowKey order lists executions newest first. Updated under the row's ETag.
/// Trigger instances: PartitionKey <c>i|{yyyyMMdd}|{shard}</c>, RowKey <c>{inverted seconds}|{id}</c> of their
/// occurrence time, with their rule enforcements beside them (<c>{inverted seconds}|{id}|f|{rule}</c>, naming the
/// execution each caused), so a trigger instance and what it caused are one range read.</item>
/// <item>In <c>{prefix}Audit</c>, traces: PartitionKey <c>g|{shard}</c> (the trace tag's hash), RowKeys
/// <c>{trace tag}|i|{id}</c> and <c>{trace tag}|e|{id}</c> pointing at the trigger instances and executions a tag
/// cannot find by itself: a record whose own id is its tag (the default) is found by the id, a rule's execution
/// through its enforcement. And sender-chosen trigger-instance ids (delivery ids): PartitionKey <c>d|{shard}</c>,
/// RowKey the id, with the time it was first accepted.</item>
/// </list>
/// Payload blobs are named <c>{yyyyMMdd}/{executions|triggerinstances}/{id}/…</c> after their record's day. Retention
/// (<see cref="PurgeDayAsync"/>) reads a day's table, deletes the trace and delivery rows its records name and the
/// day's blobs, then deletes the table: one request for the rows, however many (row by row only when an unfinished
/// execution must stay). Writes go through a <see cref="TableWriteBatcher"/>: concurrent writes to one partition leave
/// as one entity-group transaction. JSON values longer than a Table property can hold go to Blob Storage (<see cref="PayloadBlobs"/>).
/// </summary>
public sealed class TableAuditStore : IAuditStore
{
    private readonly TableClient _table;
    private readonly TableWriteBatcher _writes;
    private readonly PayloadBlobs _blobs;
    private readonly TimeProvider _time;
    private readonly int _shards;
    private readonly Lazy<Task> _tableCreated;
    private readonly AzureStorageOptions _settings;
    private readonly StorageClients _clients;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<DateOnly, DayTable> _days = new();

    public TableAuditStore(IOptions<AzureStorageOptions> options, TimeProvider time)
    {
        var settings = options.Value;
        var clients = new StorageClients(settings);
        _settings = settings;
        _clients = clients;
        _table = clients.Tables.GetTableClient(clients.Names.AuditTable);
        _writes = new TableWriteBatcher(_table, settings.AuditBatching, Math.Max(1, settings.AuditWritesInFlight));
        _blobs = new PayloadBlobs(clients.Blobs.GetBlobContainerClient(clients.Names.AuditPayloadsContainer), settings.InlineLimit);
        _time = time;
        _shards = Math.Clamp(settings.AuditShards, 1, 64);
        _tableCreated = new(() => _table.CreateIfNotExistsAsync());
    }

    /// <summary>Requests sent and entities written by the audit so far.</summary>
    public (long Requests, long Entities) WriteCounts => _days.Values.Select(d => d.Writes.Counts)
        .Aggregate(_writes.Counts, (total, day) => (total.Requests + day.Requests, total.Entities + day.Entities));

    /// <summary>Creates the table now rather than on first use.</summary>
    public Task InitializeAsync() => _tableCreated.Value;

    public async Task RecordTriggerInstanceAsync(TriggerInstanceRecord record, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("trigger_instance", record.Id);
        await _tableCreated.Value;
        var (table, partition, row) = TriggerInstanceKey(record.Id, record.OccurredAt);
        var entity = new TableEntity(partition, row)
        {
            ["Id"] = record.Id,
            ["TriggerType"] = record.TriggerType,
            ["TriggerParameters"] = record.TriggerParameters?.ToJsonString(),
            ["Payload"] = await _blobs.StoreAsync(record.Payload?.ToJsonString() ?? "null", $"{BlobFolder(TriggerInstancesFolder, record.OccurredAt, record.Id)}payload.json", cancellationToken),
            ["OccurredAt"] = record.OccurredAt,
            [NamesOtherRows] = IsOwnTrace(record.TraceTag, record.Id, record.OccurredAt) && !AuditRetention.DeliveryClaims(record.Id, record.TriggerType).Any() ? null : true,
            ["TraceTag"] = record.TraceTag,
            ["Status"] = record.Status,
            ["Reason"] = record.Reason,
            ["User"] = record.User,
        };
        await Task.WhenAll(
            table.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpsertReplace, entity), cancellationToken),
            IsOwnTrace(record.TraceTag, record.Id, record.OccurredAt)
                ? Task.CompletedTask
                : Upsert(TraceRow(record.TraceTag, $"i|{record.Id}", new() { ["At"] = record.OccurredAt }), cancellationToken));
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
        var (table, partition, row) = TriggerInstanceKey(id, occurredAt);
        try
        {
            await table.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateMerge,
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
        var occurredAt = record.TriggerInstanceOccurredAt ?? record.EnforcedAt;
        var (table, partition, row) = TriggerInstanceKey(record.TriggerInstanceId, occurredAt);
        // The trace reaches an enforcement through its trigger instance; one that was never recorded (a message
        // replayed from the dead letters, say) is still reached through this pointer, the same row its record makes.
        var ownTrace = IsOwnTrace(record.TraceTag, record.TriggerInstanceId, occurredAt);
        var pointer = ownTrace ? Task.CompletedTask : Upsert(TraceRow(record.TraceTag, $"i|{record.TriggerInstanceId}", new() { ["At"] = occurredAt }), cancellationToken);
        await table.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(partition, EnforcementRowKey(row, record.RuleRef))
        {
            [NamesOtherRows] = ownTrace ? null : true,
            ["TraceTag"] = record.TraceTag,
            ["TriggerInstanceOccurredAt"] = record.TriggerInstanceOccurredAt,
            ["TriggerInstanceId"] = record.TriggerInstanceId,
            ["RuleRef"] = record.RuleRef,
            ["ExecutionId"] = record.ExecutionId,
            ["Status"] = record.Status,
            ["FailureReason"] = record.FailureReason,
            ["User"] = record.User,
            ["EnforcedAt"] = record.EnforcedAt,
        }), cancellationToken);
        await pointer;
    }

    public async Task<bool> TryCreateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("execution", record.Id);
        await _tableCreated.Value;
        var (table, entity) = await ToEntityAsync(record, cancellationToken);
        // That row is harmless when the execution exists already, so both writes leave together.
        var pointer = HasExecutionPointer(record.Id, record.TraceTag, record.RuleRef, record.ReRunOf)
            ? Upsert(TraceRow(record.TraceTag, $"e|{record.Id}", new()), cancellationToken)
            : Task.CompletedTask;
        try
        {
            var response = await table.WriteAsync(new TableTransactionAction(TableTransactionActionType.Add, entity), cancellationToken);
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
        if (ExecutionKey(id) is not var (table, partition, row))
        {
            return null;
        }

        return await GetIfExistsAsync(table.Client, partition, row, null, cancellationToken) is { } entity ? await FromEntityAsync(entity, cancellationToken) : null;
    }

    public async Task<bool> TryUpdateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        using var span = StormTracing.StartAuditWrite("execution_update", record.Id);
        var (table, entity) = await ToEntityAsync(record, cancellationToken);
        try
        {
            var response = await table.WriteAsync(new TableTransactionAction(TableTransactionActionType.UpdateReplace,
                entity, record.Version is null ? ETag.All : new ETag(record.Version)), cancellationToken);
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
        // A trigger instance or an execution whose own id is the tag (the default) is found by that id, with no trace row.
        if (StormIds.TryGetTimestamp(traceTag, out var tagged))
        {
            triggerInstances.Add(GetTriggerInstanceAsync(traceTag, tagged, cancellationToken));
            executionIds.Add(traceTag);
        }

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
            [.. found.Select(f => f.Record).OfType<TriggerInstanceRecord>().Where(t => t.TraceTag == traceTag).DistinctBy(t => t.Id).OrderBy(t => t.OccurredAt)],
            [.. enforcements.OrderBy(e => e.EnforcedAt)],
            [.. (await Task.WhenAll(executionIds.Select(id => GetExecutionAsync(id, cancellationToken)))).OfType<ExecutionRecord>().Where(e => e.TraceTag == traceTag).OrderBy(e => e.StartTimestamp)]);
    }

    public async Task<IReadOnlyList<DateOnly>> DaysBeforeAsync(DateOnly before, CancellationToken cancellationToken)
    {
        var name = _clients.Names.AuditTable;
        var days = new List<DateOnly>();
        await foreach (var table in _clients.Tables.QueryAsync(TableServiceClient.CreateQueryFilter($"TableName ge {name + "0"} and TableName lt {name + ":"}"), cancellationToken: cancellationToken))
        {
            if (table.Name.Length == name.Length + 8
                && DateOnly.TryParseExact(table.Name.AsSpan(name.Length), "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day) && day < before)
            {
                days.Add(day);
            }
        }

        return [.. days.Order()];
    }

    public async Task<AuditDayPurge> PurgeDayAsync(DateOnly day, CancellationToken cancellationToken)
    {
        await _tableCreated.Value;
        var date = day.ToDateTime(TimeOnly.MinValue);
        var table = Day(date);

        // Which executions stay is decided by the few that could: those not finished, and workflow tasks (their
        // workflow may not have). A day with none goes whole, reading only the rows that name rows elsewhere.
        var terminal = string.Join(" and ", new[] { ExecutionStatus.Succeeded, ExecutionStatus.Failed, ExecutionStatus.Timeout, ExecutionStatus.Canceled }
            .Select(status => TableClient.CreateQueryFilter($"Status ne {status}")));
        var executions = TableClient.CreateQueryFilter($"PartitionKey ge {"x|"} and PartitionKey lt {"x|~"}");
        var candidates = await ReadAsync(table, $"{executions} and (({terminal}) or ParentId gt '')", ["Id", "Status", "ParentId"], cancellationToken);
        var mayStay = await AuditRetention.KeptExecutionsAsync(
            [.. candidates.Select(e => new ExecutionState(e.GetString("Id"), e.GetString("Status") ?? "", e.GetString("ParentId")))],
            LookUpExecutionStateAsync, cancellationToken);
        if (mayStay.Count > 0)
        {
            return await PurgeDayRowByRowAsync(day, table, cancellationToken);
        }

        var pointers = new TableWriteBatcher(_table, batched: true, maxInFlight: PurgeWritesInFlight);
        var deleting = new List<Task>();
        foreach (var row in await ReadAsync(table, $"{NamesOtherRows} eq true",
            ["Id", "TraceTag", "TriggerType", "OccurredAt", "RuleRef", "ReRunOf", "TriggerInstanceId", "TriggerInstanceOccurredAt", "EnforcedAt"], cancellationToken))
        {
            foreach (var (partition, key) in RowsNamedBy(row))
            {
                deleting.Add(pointers.DeleteIfPresentAsync(partition, key, cancellationToken));
            }
        }

        var payloads = await _blobs.PurgeAsync(string.Create(CultureInfo.InvariantCulture, $"{date:yyyyMMdd}/"), _ => false, cancellationToken);
        await Task.WhenAll(deleting);
        try
        {
            // One request, however many rows the day holds.
            await table.DeleteAsync(cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Nothing was recorded that day.
        }

        return new AuditDayPurge(day, null, null, null, payloads, mayStay);
    }

    // The trace pointer and delivery rows a day's record made in the audit's own table.
    private IEnumerable<(string Partition, string Row)> RowsNamedBy(TableEntity row)
    {
        var tag = row.GetString("TraceTag") ?? "";
        if (IsEnforcementRow(row))
        {
            var cause = row.GetString("TriggerInstanceId");
            if (!IsOwnTrace(tag, cause, row.GetDateTimeOffset("TriggerInstanceOccurredAt") ?? row.GetDateTimeOffset("EnforcedAt") ?? DateTimeOffset.MinValue))
            {
                var pointer = TraceRow(tag, $"i|{cause}", new());
                yield return (pointer.PartitionKey, pointer.RowKey);
            }

            yield break;
        }

        var id = row.GetString("Id");
        if (row.PartitionKey.StartsWith(ExecutionsKind))
        {
            if (HasExecutionPointer(id, tag, row.GetString("RuleRef"), row.GetString("ReRunOf")))
            {
                var pointer = TraceRow(tag, $"e|{id}", new());
                yield return (pointer.PartitionKey, pointer.RowKey);
            }

            yield break;
        }

        if (!IsOwnTrace(tag, id, row.GetDateTimeOffset("OccurredAt") ?? DateTimeOffset.MinValue))
        {
            var pointer = TraceRow(tag, $"i|{id}", new());
            yield return (pointer.PartitionKey, pointer.RowKey);
        }

        foreach (var claim in AuditRetention.DeliveryClaims(id, row.GetString("TriggerType")))
        {
            yield return DeliveryKey(claim);
        }
    }

    // A property on the rows that made rows in the audit's own table (trace pointers, delivery ids), so that a day
    // deleted whole finds them without reading the rest.
    private const string NamesOtherRows = "NamesOtherRows";

    private static async Task<List<TableEntity>> ReadAsync(DayTable table, string filter, string[] columns, CancellationToken cancellationToken)
    {
        var rows = new List<TableEntity>();
        try
        {
            await foreach (var row in table.Client.QueryAsync<TableEntity>(filter, select: [.. columns, "PartitionKey", "RowKey"], cancellationToken: cancellationToken))
            {
                rows.Add(row);
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // No table for the day.
        }

        return rows;
    }

    // A day that keeps some executions: everything else of it is read and deleted row by row.
    private async Task<AuditDayPurge> PurgeDayRowByRowAsync(DateOnly day, DayTable table, CancellationToken cancellationToken)
    {
        var date = day.ToDateTime(TimeOnly.MinValue);
        var pointers = new TableWriteBatcher(_table, batched: true, maxInFlight: PurgeWritesInFlight);
        var rows = new TableWriteBatcher(table.Client, batched: true, maxInFlight: PurgeWritesInFlight);
        var deleting = new List<Task>();
        var dayRows = new List<TableEntity>();
        void DeletePointer(string partition, string row) => deleting.Add(pointers.DeleteIfPresentAsync(partition, row, cancellationToken));

        // The day's executions: what has not finished stays, with its workflow's and the trigger instances that caused it.
        var executions = await ReadDayAsync(table, ExecutionsKind, date, ["Id", "Status", "ParentId", "TraceTag", "RuleRef", "ReRunOf", "TriggerInstanceId"], cancellationToken);
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
            dayRows.Add(execution);
            foreach (var (partition, key) in RowsNamedBy(execution))
            {
                DeletePointer(partition, key);
            }
        }

        // The day's trigger instances with their rule enforcements, their trace pointers and their delivery claims.
        var purgedTriggerInstances = 0;
        var purgedEnforcements = 0;
        foreach (var row in await ReadDayAsync(table, TriggerInstancesKind, date, ["Id", "TraceTag", "TriggerType", "TriggerInstanceId", "RuleRef", "OccurredAt", "TriggerInstanceOccurredAt", "EnforcedAt"], cancellationToken))
        {
            var enforcement = IsEnforcementRow(row);
            var id = enforcement ? row.GetString("TriggerInstanceId") : row.GetString("Id");
            if (keptCauses.Contains(id))
            {
                continue;
            }

            dayRows.Add(row);
            if (enforcement)
            {
                purgedEnforcements++;
            }
            else
            {
                purgedTriggerInstances++;
            }

            foreach (var (partition, key) in RowsNamedBy(row))
            {
                DeletePointer(partition, key);
            }
        }

        var payloads = await _blobs.PurgeAsync(string.Create(CultureInfo.InvariantCulture, $"{date:yyyyMMdd}/"),
            name => IsKeptPayload(name, kept, keptCauses), cancellationToken);
        await Task.WhenAll(deleting);
        await Task.WhenAll(dayRows.Select(row => rows.DeleteIfPresentAsync(row.PartitionKey, row.RowKey, cancellationToken)));

        return new AuditDayPurge(day, purgedTriggerInstances, purgedEnforcements, purgedExecutions, payloads, kept);
    }

    // Deletes in flight at once while purging: the day's partitions are many, and each delete is cheap.
    private const int PurgeWritesInFlight = 16;

    private async Task<ExecutionState?> LookUpExecutionStateAsync(string id, CancellationToken cancellationToken) =>
        ExecutionKey(id) is var (table, partition, row) && await GetIfExistsAsync(table.Client, partition, row, ["Status", "ParentId"], cancellationToken) is { } found
            ? new ExecutionState(id, found.GetString("Status") ?? "", found.GetString("ParentId"))
            : null;

    // Every shard's partition of one kind and day, with only the columns named; none when the day has no table.
    private async Task<List<TableEntity>> ReadDayAsync(DayTable table, char kind, DateTime day, string[] columns, CancellationToken cancellationToken)
    {
        var shards = await Task.WhenAll(Enumerable.Range(0, _shards).Select(shard =>
            ReadAsync(table, TableClient.CreateQueryFilter($"PartitionKey eq {Partition(kind, day, shard)}"), columns, cancellationToken)));
        return [.. shards.SelectMany(s => s)];
    }

    private static async Task<TableEntity?> GetIfExistsAsync(TableClient table, string partition, string row, string[]? columns, CancellationToken cancellationToken)
    {
        try
        {
            var found = await table.GetEntityIfExistsAsync<TableEntity>(partition, row, columns, cancellationToken);
            return found.HasValue ? found.Value : null;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null; // the day has no table
        }
    }

    /// <summary>
    /// One day's table of executions, trigger instances and rule enforcements, <c>{prefix}Audit{yyyyMMdd}</c>, made on
    /// its first write. Retention deletes it whole.
    /// </summary>
    private DayTable Day(DateTime day) => _days.GetOrAdd(DateOnly.FromDateTime(day), d => new DayTable(
        _clients.Tables.GetTableClient(string.Create(CultureInfo.InvariantCulture, $"{_clients.Names.AuditTable}{d:yyyyMMdd}")), _settings));

    private sealed class DayTable(TableClient client, AzureStorageOptions settings)
    {
        private Lazy<Task> _created = new(() => client.CreateIfNotExistsAsync());

        public TableClient Client => client;

        public TableWriteBatcher Writes { get; } = new(client, settings.AuditBatching, Math.Max(1, settings.AuditWritesInFlight));

        public async Task<Response> WriteAsync(TableTransactionAction action, CancellationToken cancellationToken)
        {
            await _created.Value;
            try
            {
                return await Writes.WriteAsync(action, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode == "TableNotFound"
                && action.ActionType is TableTransactionActionType.Add or TableTransactionActionType.UpsertReplace or TableTransactionActionType.UpsertMerge)
            {
                // Retention deleted the day after this process made its table; a record of that day made again.
                _created = new(() => client.CreateIfNotExistsAsync());
                await _created.Value;
                return await Writes.WriteAsync(action, cancellationToken);
            }
        }

        public async Task DeleteAsync(CancellationToken cancellationToken)
        {
            await client.DeleteAsync(cancellationToken);
            _created = new(() => client.CreateIfNotExistsAsync());
        }
    }

    // A trigger instance whose tag is its own generated id is found by the tag alone (see GetTraceAsync): no trace row.
    private static bool IsOwnTrace(string traceTag, string id, DateTimeOffset occurredAt) =>
        traceTag == id && StormIds.TryGetTimestamp(id, out var at) && at.ToUnixTimeSeconds() == occurredAt.ToUnixTimeSeconds();

    // A rule's first execution is found through its enforcement row, which names it, and an execution whose tag is
    // its own id by the tag; any other (runs with a tag of their own, re-runs, retries) through a trace row.
    private static bool HasExecutionPointer(string id, string traceTag, string? ruleRef, string? reRunOf) =>
        (ruleRef is null || reRunOf is not null) && traceTag != id;

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
            var table = Day(day);
            var shards = await Task.WhenAll(Enumerable.Range(0, _shards).Select(async shard =>
            {
                var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition(kind, day, shard)} and RowKey ge {newest} and RowKey lt {oldest}");
                if (query.Status is not null)
                {
                    filter += " and " + TableClient.CreateQueryFilter($"Status eq {query.Status}");
                }

                var found = new List<TableEntity>();
                try
                {
                    await foreach (var row in table.Client.QueryAsync<TableEntity>(filter, maxPerPage: query.Limit, cancellationToken: cancellationToken))
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
                }
                catch (RequestFailedException ex) when (ex.Status == 404)
                {
                    // Nothing was recorded that day (or retention has deleted it).
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
        var (table, partition, row) = TriggerInstanceKey(id, occurredAt);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {partition} and RowKey ge {row} and RowKey lt {row + "|~"}");
        TriggerInstanceRecord? record = null;
        var enforcements = new List<RuleEnforcementRecord>();
        var rows = new List<TableEntity>();
        try
        {
            await foreach (var entity in table.Client.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
            {
                rows.Add(entity);
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // No table for that day: nothing recorded, or purged.
        }

        foreach (var entity in rows)
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

    private async Task<(DayTable Table, TableEntity Entity)> ToEntityAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        var (table, partition, row) = ExecutionKey(record.Id) ?? throw new ArgumentException($"'{record.Id}' is not an execution id (24 hex digits, the first 8 its creation time)", nameof(record));
        return (table, await ToEntityAsync(record, partition, row, cancellationToken));
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
        [NamesOtherRows] = HasExecutionPointer(record.Id, record.TraceTag, record.RuleRef, record.ReRunOf) ? true : null,
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

    private (DayTable Table, string Partition, string Row)? ExecutionKey(string id) =>
        IsKeySafe(id) && StormIds.TryGetTimestamp(id, out var at) ? (Day(at.UtcDateTime.Date), Partition(ExecutionsKind, at.UtcDateTime.Date, Shard(id)), $"{TimeKey(at)}|{id}") : null;

    // The id is escaped so that a trigger instance's row key never reads as another's enforcement row.
    private (DayTable Table, string Partition, string Row) TriggerInstanceKey(string id, DateTimeOffset occurredAt) =>
        (Day(occurredAt.UtcDateTime.Date), Partition(TriggerInstancesKind, occurredAt.UtcDateTime.Date, Shard(id)), $"{TimeKey(occurredAt)}|{Escape(id)}");

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
