using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Azure.Audit;

/// <summary>
/// The audit trail in Azure Table Storage.
/// <list type="bullet">
/// <item><c>{prefix}TriggerInstances</c>: PartitionKey = trigger-instance id.</item>
/// <item><c>{prefix}RuleEnforcements</c>: PartitionKey = trigger-instance id, RowKey = rule ref.</item>
/// <item><c>{prefix}Executions</c>: PartitionKey = execution id; updated under its ETag.</item>
/// <item><c>{prefix}AuditIndex</c>: <c>trace|{tag}</c> partitions list every record of a trace;
/// <c>executions|{yyyyMMddHH}</c> and <c>triggerinstances|{yyyyMMddHH}</c> partitions list records by hour, newest
/// first (RowKey = inverted ticks), with their status for filtering.</item>
/// </list>
/// JSON values longer than a Table property can hold go to Blob Storage (<see cref="PayloadBlobs"/>).
/// </summary>
public sealed class TableAuditStore : IAuditStore
{
    private const string TraceKind = "trace";
    private const string ExecutionsKind = "executions";
    private const string TriggerInstancesKind = "triggerinstances";

    private readonly TableClient _triggerInstances;
    private readonly TableClient _enforcements;
    private readonly TableClient _executions;
    private readonly TableClient _index;
    private readonly PayloadBlobs _blobs;
    private readonly TimeProvider _time;
    private readonly Lazy<Task> _tablesCreated;

    public TableAuditStore(IOptions<AzureStorageOptions> options, TimeProvider time)
    {
        var settings = options.Value;
        var service = new TableServiceClient(settings.ConnectionString);
        var prefix = settings.TablePrefix;
        _triggerInstances = service.GetTableClient(prefix + "TriggerInstances");
        _enforcements = service.GetTableClient(prefix + "RuleEnforcements");
        _executions = service.GetTableClient(prefix + "Executions");
        _index = service.GetTableClient(prefix + "AuditIndex");
        _blobs = new PayloadBlobs(new BlobServiceClient(settings.ConnectionString).GetBlobContainerClient($"{prefix.ToLowerInvariant()}-audit-payloads"), settings.InlineLimit);
        _time = time;
        _tablesCreated = new(() => Task.WhenAll(new[] { _triggerInstances, _enforcements, _executions, _index }.Select(t => t.CreateIfNotExistsAsync())));
    }

    /// <summary>Creates the tables now rather than on first use.</summary>
    public Task InitializeAsync() => _tablesCreated.Value;

    public async Task RecordTriggerInstanceAsync(TriggerInstanceRecord record, CancellationToken cancellationToken)
    {
        await _tablesCreated.Value;
        var entity = new TableEntity(record.Id, "")
        {
            ["TriggerType"] = record.TriggerType,
            ["TriggerParameters"] = record.TriggerParameters?.ToJsonString(),
            ["Payload"] = await _blobs.StoreAsync(record.Payload?.ToJsonString() ?? "null", $"triggerinstances/{record.Id}/payload.json", cancellationToken),
            ["OccurredAt"] = record.OccurredAt,
            ["TraceTag"] = record.TraceTag,
            ["Status"] = record.Status,
            ["Reason"] = record.Reason,
        };
        await _triggerInstances.UpsertEntityAsync(entity, TableUpdateMode.Replace, cancellationToken);
        await Task.WhenAll(
            _index.UpsertEntityAsync(new TableEntity(TracePartition(record.TraceTag), $"ti|{record.Id}"), TableUpdateMode.Replace, cancellationToken),
            _index.UpsertEntityAsync(TimeIndexRow(TriggerInstancesKind, record.OccurredAt, record.Id, record.Status), TableUpdateMode.Replace, cancellationToken));
    }

    public async Task UpdateTriggerInstanceStatusAsync(string id, DateTimeOffset occurredAt, string status, string? reason, CancellationToken cancellationToken)
    {
        await _tablesCreated.Value;
        try
        {
            await _triggerInstances.UpdateEntityAsync(new TableEntity(id, "") { ["Status"] = status, ["Reason"] = reason }, ETag.All, TableUpdateMode.Merge, cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return;
        }

        await _index.UpsertEntityAsync(TimeIndexRow(TriggerInstancesKind, occurredAt, id, status), TableUpdateMode.Replace, cancellationToken);
    }

    public async Task RecordRuleEnforcementAsync(RuleEnforcementRecord record, CancellationToken cancellationToken)
    {
        await _tablesCreated.Value;
        var entity = new TableEntity(record.TriggerInstanceId, record.RuleRef)
        {
            ["ExecutionId"] = record.ExecutionId,
            ["Status"] = record.Status,
            ["FailureReason"] = record.FailureReason,
            ["EnforcedAt"] = record.EnforcedAt,
            ["TraceTag"] = record.TraceTag,
        };
        await Task.WhenAll(
            _enforcements.UpsertEntityAsync(entity, TableUpdateMode.Replace, cancellationToken),
            _index.UpsertEntityAsync(new TableEntity(TracePartition(record.TraceTag), $"enf|{record.TriggerInstanceId}|{record.RuleRef}"), TableUpdateMode.Replace, cancellationToken));
    }

    public async Task<bool> TryCreateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        await _tablesCreated.Value;
        try
        {
            var response = await _executions.AddEntityAsync(await ToEntityAsync(record, cancellationToken), cancellationToken);
            record.Version = response.Headers.ETag?.ToString();
        }
        catch (RequestFailedException ex) when (ex.Status == 409)
        {
            return false;
        }

        await Task.WhenAll(
            _index.UpsertEntityAsync(new TableEntity(TracePartition(record.TraceTag), $"exec|{record.Id}"), TableUpdateMode.Replace, cancellationToken),
            _index.UpsertEntityAsync(TimeIndexRow(ExecutionsKind, record.StartTimestamp, record.Id, record.Status), TableUpdateMode.Replace, cancellationToken));
        return true;
    }

    public async Task<ExecutionRecord?> GetExecutionAsync(string id, CancellationToken cancellationToken)
    {
        if (!IsKeySafe(id))
        {
            return null;
        }

        await _tablesCreated.Value;
        var response = await _executions.GetEntityIfExistsAsync<TableEntity>(id, "", cancellationToken: cancellationToken);
        return response.HasValue ? await FromEntityAsync(response.Value!, cancellationToken) : null;
    }

    public async Task<bool> TryUpdateExecutionAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        await _tablesCreated.Value;
        try
        {
            var response = await _executions.UpdateEntityAsync(await ToEntityAsync(record, cancellationToken),
                record.Version is null ? ETag.All : new ETag(record.Version), TableUpdateMode.Replace, cancellationToken);
            record.Version = response.Headers.ETag?.ToString();
        }
        catch (RequestFailedException ex) when (ex.Status is 412 or 404)
        {
            return false;
        }

        await _index.UpsertEntityAsync(TimeIndexRow(ExecutionsKind, record.StartTimestamp, record.Id, record.Status), TableUpdateMode.Replace, cancellationToken);
        return true;
    }

    public async Task<IReadOnlyList<ExecutionRecord>> QueryExecutionsAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        var ids = await QueryIndexAsync(ExecutionsKind, query, cancellationToken);
        var records = await Task.WhenAll(ids.Select(id => GetExecutionAsync(id, cancellationToken)));
        return [.. records.OfType<ExecutionRecord>()];
    }

    public async Task<IReadOnlyList<TriggerInstanceRecord>> QueryTriggerInstancesAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        var ids = await QueryIndexAsync(TriggerInstancesKind, query, cancellationToken);
        var records = await Task.WhenAll(ids.Select(id => GetTriggerInstanceAsync(id, cancellationToken)));
        return [.. records.OfType<TriggerInstanceRecord>()];
    }

    public async Task<AuditTrace> GetTraceAsync(string traceTag, CancellationToken cancellationToken)
    {
        await _tablesCreated.Value;
        var triggerInstances = new List<Task<TriggerInstanceRecord?>>();
        var enforcements = new List<Task<RuleEnforcementRecord?>>();
        var executions = new List<Task<ExecutionRecord?>>();
        var partition = TracePartition(traceTag);
        await foreach (var row in _index.QueryAsync<TableEntity>(e => e.PartitionKey == partition, select: ["RowKey"], cancellationToken: cancellationToken))
        {
            var parts = row.RowKey.Split('|');
            switch (parts[0])
            {
                case "ti":
                    triggerInstances.Add(GetTriggerInstanceAsync(parts[1], cancellationToken));
                    break;
                case "enf":
                    enforcements.Add(GetEnforcementAsync(parts[1], parts[2], cancellationToken));
                    break;
                case "exec":
                    executions.Add(GetExecutionAsync(parts[1], cancellationToken));
                    break;
            }
        }

        return new AuditTrace(
            traceTag,
            [.. (await Task.WhenAll(triggerInstances)).OfType<TriggerInstanceRecord>().OrderBy(t => t.OccurredAt)],
            [.. (await Task.WhenAll(enforcements)).OfType<RuleEnforcementRecord>().OrderBy(e => e.EnforcedAt)],
            [.. (await Task.WhenAll(executions)).OfType<ExecutionRecord>().OrderBy(e => e.StartTimestamp)]);
    }

    private async Task<List<string>> QueryIndexAsync(string kind, AuditQuery query, CancellationToken cancellationToken)
    {
        await _tablesCreated.Value;
        var (from, to) = query.Window(_time.GetUtcNow());
        var ids = new List<string>();
        var fromKey = RowKey(from, "");
        var toKey = RowKey(to, "");
        for (var hour = Hour(to); hour >= Hour(from) && ids.Count < query.Limit; hour = hour.AddHours(-1))
        {
            var partition = $"{kind}|{hour:yyyyMMddHH}";
            var filter = TableClient.CreateQueryFilter($"PartitionKey eq {partition} and RowKey ge {toKey} and RowKey lt {fromKey + "~"}");
            if (query.Status is not null)
            {
                filter += " and " + TableClient.CreateQueryFilter($"Status eq {query.Status}");
            }

            await foreach (var row in _index.QueryAsync<TableEntity>(filter, maxPerPage: query.Limit, select: ["RowKey"], cancellationToken: cancellationToken))
            {
                ids.Add(row.RowKey[(row.RowKey.IndexOf('|', StringComparison.Ordinal) + 1)..]);
                if (ids.Count >= query.Limit)
                {
                    break;
                }
            }
        }

        return ids;
    }

    private async Task<TriggerInstanceRecord?> GetTriggerInstanceAsync(string id, CancellationToken cancellationToken)
    {
        var response = await _triggerInstances.GetEntityIfExistsAsync<TableEntity>(id, "", cancellationToken: cancellationToken);
        if (!response.HasValue)
        {
            return null;
        }

        var e = response.Value!;
        return new TriggerInstanceRecord
        {
            Id = id,
            TriggerType = e.GetString("TriggerType"),
            TriggerParameters = ParseJson(e.GetString("TriggerParameters")) as JsonObject,
            Payload = ParseJson(await _blobs.LoadAsync(e.GetString("Payload"), cancellationToken)),
            OccurredAt = e.GetDateTimeOffset("OccurredAt") ?? DateTimeOffset.MinValue,
            TraceTag = e.GetString("TraceTag"),
            Status = e.GetString("Status"),
            Reason = e.GetString("Reason"),
        };
    }

    private async Task<RuleEnforcementRecord?> GetEnforcementAsync(string triggerInstanceId, string ruleRef, CancellationToken cancellationToken)
    {
        var response = await _enforcements.GetEntityIfExistsAsync<TableEntity>(triggerInstanceId, ruleRef, cancellationToken: cancellationToken);
        if (!response.HasValue)
        {
            return null;
        }

        var e = response.Value!;
        return new RuleEnforcementRecord(triggerInstanceId, ruleRef, e.GetString("ExecutionId"), e.GetString("Status"),
            e.GetString("FailureReason"), e.GetDateTimeOffset("EnforcedAt") ?? DateTimeOffset.MinValue, e.GetString("TraceTag"));
    }

    private async Task<TableEntity> ToEntityAsync(ExecutionRecord record, CancellationToken cancellationToken) => new(record.Id, "")
    {
        ["ActionRef"] = record.ActionRef,
        ["RunnerType"] = record.RunnerType,
        ["TraceTag"] = record.TraceTag,
        ["TriggerInstanceId"] = record.TriggerInstanceId,
        ["RuleRef"] = record.RuleRef,
        ["Parameters"] = await _blobs.StoreAsync(record.Parameters.ToJsonString(), $"executions/{record.Id}/parameters.json", cancellationToken),
        ["SealedParameters"] = await _blobs.StoreAsync(record.SealedParameters?.ToJsonString(), $"executions/{record.Id}/sealed-parameters.json", cancellationToken),
        ["ReRunOf"] = record.ReRunOf,
        ["RetryCount"] = record.RetryCount,
        ["Status"] = record.Status,
        ["History"] = JsonSerializer.Serialize(record.History.Select(h => new[] { h.Status, h.At.ToString("O", CultureInfo.InvariantCulture) })),
        ["StartTimestamp"] = record.StartTimestamp,
        ["EndTimestamp"] = record.EndTimestamp,
        ["Result"] = await _blobs.StoreAsync(record.Result?.ToJsonString(), $"executions/{record.Id}/result.json", cancellationToken),
        ["Error"] = await _blobs.StoreAsync(record.Error, $"executions/{record.Id}/error.txt", cancellationToken),
    };

    private async Task<ExecutionRecord> FromEntityAsync(TableEntity e, CancellationToken cancellationToken)
    {
        var history = JsonSerializer.Deserialize<string[][]>(e.GetString("History") ?? "[]") ?? [];
        return new ExecutionRecord
        {
            Id = e.PartitionKey,
            ActionRef = e.GetString("ActionRef"),
            RunnerType = e.GetString("RunnerType"),
            TraceTag = e.GetString("TraceTag"),
            TriggerInstanceId = e.GetString("TriggerInstanceId"),
            RuleRef = e.GetString("RuleRef"),
            Parameters = ParseJson(await _blobs.LoadAsync(e.GetString("Parameters"), cancellationToken)) as JsonObject ?? [],
            SealedParameters = ParseJson(await _blobs.LoadAsync(e.GetString("SealedParameters"), cancellationToken)) as JsonObject,
            ReRunOf = e.GetString("ReRunOf"),
            RetryCount = e.GetInt32("RetryCount") ?? 0,
            Status = e.GetString("Status"),
            History = [.. history.Select(h => new StatusChange(h[0], DateTimeOffset.Parse(h[1], CultureInfo.InvariantCulture)))],
            StartTimestamp = e.GetDateTimeOffset("StartTimestamp") ?? DateTimeOffset.MinValue,
            EndTimestamp = e.GetDateTimeOffset("EndTimestamp"),
            Result = ParseJson(await _blobs.LoadAsync(e.GetString("Result"), cancellationToken)),
            Error = await _blobs.LoadAsync(e.GetString("Error"), cancellationToken),
            Version = e.ETag.ToString(),
        };
    }

    private static TableEntity TimeIndexRow(string kind, DateTimeOffset at, string id, string status) =>
        new($"{kind}|{Hour(at):yyyyMMddHH}", RowKey(at, id)) { ["Status"] = status };

    // Newest first: the row key counts down as time goes on.
    private static string RowKey(DateTimeOffset at, string id) =>
        $"{(DateTimeOffset.MaxValue.UtcTicks - at.UtcTicks).ToString("D19", CultureInfo.InvariantCulture)}|{id}";

    private static DateTimeOffset Hour(DateTimeOffset at) => new(at.UtcDateTime.Year, at.UtcDateTime.Month, at.UtcDateTime.Day, at.UtcDateTime.Hour, 0, 0, TimeSpan.Zero);

    private static string TracePartition(string traceTag) => $"{TraceKind}|{traceTag}";

    private static bool IsKeySafe(string key) => key.Length is > 0 and <= 512 && !key.Any(c => char.IsControl(c) || c is '/' or '\\' or '#' or '?');

    private static JsonNode? ParseJson(string? text) => text is null ? null : JsonNode.Parse(text);
}
