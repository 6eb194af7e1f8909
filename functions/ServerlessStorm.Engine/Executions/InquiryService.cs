using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ServerlessStorm.Engine.Actions.Runners;
using ServerlessStorm.Engine.Audit;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Json;
using ServerlessStorm.Engine.Packs;

namespace ServerlessStorm.Engine.Executions;

/// <summary>Why a response to an inquiry was refused, with the HTTP status that says so.</summary>
public sealed class InquiryRefusedException(int status, string message, IReadOnlyList<string>? problems = null) : Exception(message)
{
    public int Status { get; } = status;

    public IReadOnlyList<string> Problems { get; } = problems ?? [];
}

/// <summary>
/// Inquiries (executions of the inquirer runner waiting in <c>pending</c>): lists them, takes a response — from an
/// allowed user, matching the inquiry's schema, before its time to live runs out — and ends them: succeeded with
/// the response in the result, or timeout when nobody answered in time.
/// </summary>
/// <remarks>
/// A schema property marked <c>secret: true</c> (a second factor, a password) is masked in the stored result, the
/// API and the action trigger, as StackStorm masks it. The workflow that asked gets it sealed, so its next task can
/// use it and the workflow's own history holds only ciphertext.
/// </remarks>
public sealed class InquiryService(PackCatalog catalog, IAuditStore audit, CompletionAnnouncer announcer, TimeProvider time, ILogger<InquiryService> logger,
    Datastore.KeyValueService datastore, Workflows.IWorkflowControl? workflows = null, Security.Rbac.AccessPolicy? access = null)
{
    /// <summary>The longest time to live the sweep looks back for (a pending inquiry older than this is not found by it).</summary>
    public static readonly TimeSpan LongestTtl = TimeSpan.FromDays(30);

    /// <summary>The inquiries still waiting, newest first.</summary>
    public async Task<IReadOnlyList<ExecutionRecord>> ListPendingAsync(int limit, CancellationToken cancellationToken) =>
        [.. (await audit.QueryExecutionsAsync(new AuditQuery(ExecutionStatus.Pending, time.GetUtcNow() - LongestTtl, null, limit), cancellationToken))
            .Where(e => e.RunnerType == InquirerRunner.Type)];

    /// <summary>The inquiry with that id (expired on the spot if its time ran out); null when there is none.</summary>
    public async Task<ExecutionRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        var record = await audit.GetExecutionAsync(id, cancellationToken);
        if (record is null || record.RunnerType != InquirerRunner.Type)
        {
            return null;
        }

        return await ExpireIfDueAsync(record, cancellationToken) ?? record;
    }

    /// <summary>Answers the inquiry; throws <see cref="InquiryRefusedException"/> naming what was wrong.</summary>
    public async Task<ExecutionRecord> RespondAsync(string id, JsonNode? response, string user, CancellationToken cancellationToken)
    {
        using var span = Diagnostics.StormTracing.Source.StartActivity(Diagnostics.StormTracing.InquiryRespond)?.SetTag(Diagnostics.StormTracing.ExecutionId, id);
        try
        {
            var answered = await RespondUntracedAsync(id, response, user, cancellationToken);
            span?.SetTag(Diagnostics.StormTracing.TraceTag, answered.TraceTag).SetTag(Diagnostics.StormTracing.Status, answered.Status);
            return answered;
        }
        catch (InquiryRefusedException ex)
        {
            Diagnostics.StormTracing.Fail(span, $"refused with {ex.Status}");
            throw;
        }
    }

    private async Task<ExecutionRecord> RespondUntracedAsync(string id, JsonNode? response, string user, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var record = await audit.GetExecutionAsync(id, cancellationToken) ?? throw new InquiryRefusedException(404, $"inquiry '{id}' does not exist");
            if (record.RunnerType != InquirerRunner.Type)
            {
                throw new InquiryRefusedException(400, $"execution '{id}' is not an inquiry (its runner is {record.RunnerType})");
            }

            if (await ExpireIfDueAsync(record, cancellationToken) is { } expired)
            {
                throw new InquiryRefusedException(409, $"inquiry '{id}' expired at {Api.ApiViews.Time(Deadline(expired)!.Value)} without a response");
            }

            if (record.Status != ExecutionStatus.Pending)
            {
                throw new InquiryRefusedException(409, $"inquiry '{id}' is {record.Status}, not pending: it takes no more responses");
            }

            CheckResponder(record, user);
            if (response is not JsonObject answer)
            {
                throw new InquiryRefusedException(400, "the response must be a JSON object");
            }

            var schema = record.Result?["schema"] as JsonObject ?? InquirerRunner.DefaultSchema;
            var secrets = new List<(string Path, JsonNode Value)>();
            var masked = (JsonObject)WithSecrets(answer, schema, _ => SecretMasker.Mask, secrets, "")!;
            if (JsonSchema.Validate(answer, schema) is { Count: > 0 } problems)
            {
                var shown = problems.Select(p => Shown(p, secrets)).ToList();
                throw new InquiryRefusedException(400, $"the response does not match the inquiry's schema: {string.Join("; ", shown)}", shown);
            }

            var result = (JsonObject)(record.Result?.DeepClone() ?? new JsonObject());
            result["response"] = masked;
            result["responded_by"] = user;
            record.Result = result;
            if (secrets.Count > 0)
            {
                // Kept sealed beside the masked result: the asking workflow, a re-run that reuses this answer, or a
                // task activity that finds it answered already, all get the value.
                var sealedResult = (JsonObject)result.DeepClone();
                sealedResult["response"] = WithSecrets(answer, schema, datastore.SealValue, [], "");
                record.SealedResult = sealedResult;
            }

            record.Transition(ExecutionStatus.Succeeded, time.GetUtcNow());
            if (await audit.TryUpdateExecutionAsync(record, cancellationToken))
            {
                logger.InquiryAnswered(id, user);
                await EndedAsync(record, cancellationToken);
                return record;
            }
        }

        throw new InvalidOperationException($"inquiry {id} kept changing while being answered");
    }

    /// <summary>Times out every pending inquiry whose time to live has passed; returns how many.</summary>
    public async Task<int> ExpireDueAsync(CancellationToken cancellationToken)
    {
        var expired = 0;
        var pending = await ListPendingAsync(1000, cancellationToken);
        foreach (var inquiry in pending)
        {
            if (await ExpireIfDueAsync(inquiry, cancellationToken) is not null)
            {
                expired++;
            }
        }

        Diagnostics.StormMetrics.InquiriesPendingCounted(pending.Count - expired);
        return expired;
    }

    // As StackStorm: the responder (the authenticated caller) must be among the users when users are listed, and hold
    // one of the roles when roles are listed. Without RBAC, roles are not checked (st2 does the same).
    private void CheckResponder(ExecutionRecord record, string user)
    {
        var users = (record.Result?["users"] as JsonArray)?.Select(u => u?.ToString()).OfType<string>().ToList() ?? [];
        var roles = (record.Result?["roles"] as JsonArray)?.Select(r => r?.ToString()).OfType<string>().ToList() ?? [];
        if (users.Count > 0 && !users.Contains(user, StringComparer.Ordinal))
        {
            throw new InquiryRefusedException(403, $"User \"{user}\" does not have permission to respond to inquiry \"{record.Id}\" (it allows users: {string.Join(", ", users)})");
        }

        if (roles.Count > 0 && access is { Enabled: true } && !roles.Any(role => access.HasRole(user, role)))
        {
            throw new InquiryRefusedException(403, $"User \"{user}\" does not have permission to respond to inquiry \"{record.Id}\" (it allows roles: {string.Join(", ", roles)}; the user holds: {string.Join(", ", access.RolesOf(user).DefaultIfEmpty("none"))})");
        }
    }

    private async Task<ExecutionRecord?> ExpireIfDueAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        if (record.Status != ExecutionStatus.Pending || Deadline(record) is not { } deadline || time.GetUtcNow() < deadline)
        {
            return null;
        }

        using var span = Diagnostics.StormTracing.Source.StartActivity(Diagnostics.StormTracing.InquiryExpire)
            ?.SetTag(Diagnostics.StormTracing.ExecutionId, record.Id).SetTag(Diagnostics.StormTracing.TraceTag, record.TraceTag);
        record.Error = $"no response within the inquiry's time to live ({record.Result?["ttl"]} minutes)";
        record.Transition(ExecutionStatus.Timeout, time.GetUtcNow());
        if (!await audit.TryUpdateExecutionAsync(record, cancellationToken))
        {
            return null;
        }

        logger.InquiryTimedOut(record.Id);
        await EndedAsync(record, cancellationToken);
        return record;
    }

    // The answer with every value the schema marks secret: true replaced — in nested objects and list items too, as
    // StackStorm finds secrets — and those values with their paths, named as schema problems name them.
    private static JsonNode? WithSecrets(JsonNode? value, JsonObject? schema, Func<JsonNode?, string> replace, List<(string Path, JsonNode Value)> secrets, string path)
    {
        if (value is JsonObject obj && schema?["properties"] is JsonObject properties)
        {
            var copy = new JsonObject();
            foreach (var (name, child) in obj)
            {
                copy[name] = Child(child, properties[name] as JsonObject, path.Length == 0 ? name : $"{path}.{name}");
            }

            return copy;
        }

        if (value is JsonArray array && schema?["items"] is JsonObject items)
        {
            return new JsonArray([.. array.Select((child, i) => Child(child, items, $"{path}[{i}]"))]);
        }

        return value?.DeepClone();

        JsonNode? Child(JsonNode? child, JsonObject? childSchema, string childPath)
        {
            if (child is null || childSchema?["secret"] is not JsonValue secret || !secret.TryGetValue<bool>(out var isSecret) || !isSecret)
            {
                return WithSecrets(child, childSchema, replace, secrets, childPath);
            }

            secrets.Add((childPath, child));
            return JsonValue.Create(replace(child));
        }
    }

    // The schema problems that never quote the value (JsonSchema's wording).
    private static readonly string[] ValueFreeProblems =
        ["is longer than", "is shorter than", "expected ", "does not match the pattern", "has ", "is required", "could not be matched"];

    // A problem about a secret value (or one that quotes another problem about it) is named, not shown: a problem may
    // print the value in forms no text search would catch (a number reformatted, a string escaped).
    private static string Shown(string problem, List<(string Path, JsonNode Value)> secrets)
    {
        foreach (var (path, _) in secrets)
        {
            if (problem.StartsWith(path + ": ", StringComparison.Ordinal)
                && ValueFreeProblems.Any(kind => problem.AsSpan(path.Length + 2).StartsWith(kind, StringComparison.Ordinal)))
            {
                return problem; // says what is wrong without the value (too long, wrong type, …)
            }

            if (problem.StartsWith(path + ":", StringComparison.Ordinal) || problem.StartsWith(path + ".", StringComparison.Ordinal) || problem.StartsWith(path + "[", StringComparison.Ordinal))
            {
                return $"{path}: does not match the schema (the value is secret, so it is not shown)";
            }

            if (problem.Contains(path, StringComparison.Ordinal))
            {
                var at = problem.IndexOf(": ", StringComparison.Ordinal);
                return $"{(at > 0 ? problem[..at] : "the response")}: does not match the schema (it holds a secret, so it is not shown)";
            }
        }

        // Else the value itself, as sent and as JSON escapes it, wherever a problem quotes it.
        var texts = secrets.SelectMany(secret => secret.Value is JsonValue v && v.TryGetValue<string>(out var text)
            ? [text, System.Text.Json.JsonSerializer.Serialize(text)[1..^1]]
            : new[] { secret.Value.ToJsonString() });
        return SecretMasker.MaskText(problem, [.. texts.Where(t => t.Length > 0).Distinct()]);
    }

    // An inquiry that ended: counted, announced, and — when a workflow's task asked it — handed to that workflow,
    // with the secret fields of the response sealed rather than masked.
    private async Task EndedAsync(ExecutionRecord record, CancellationToken cancellationToken)
    {
        Diagnostics.StormMetrics.ExecutionFinished(record);
        await Workflows.WorkflowTaskRunner.CountEndedTaskAsync(audit, record, cancellationToken);
        await announcer.AnnounceAsync(catalog.Actions.GetValueOrDefault(record.ActionRef), record, cancellationToken);
        if (record.ParentId is { } workflow && workflows is not null)
        {
            await workflows.CompleteWaitingTaskAsync(workflow, record.Id,
                new Workflows.WorkflowTaskOutcome(record.Status, (record.SealedResult ?? record.Result)?.DeepClone(), record.Error, record.Id), cancellationToken);
        }
    }

    private static DateTimeOffset? Deadline(ExecutionRecord record)
    {
        var since = record.History.LastOrDefault(h => h.Status == ExecutionStatus.Pending)?.At;
        return since is not null && JsonNumbers.TryGetDouble(record.Result?["ttl"], out var minutes) && minutes > 0
            ? since.Value + TimeSpan.FromMinutes(minutes)
            : null;
    }
}
