using Microsoft.Extensions.Logging;

namespace ServerlessStorm.Engine.Diagnostics;

/// <summary>
/// Every log event the engine, its Azure parts, the Function app and the CLI write, in one place, each with a stable
/// <see cref="EventId"/> so alerts and queries can key on the number instead of the text.
/// </summary>
/// <remarks>
/// <para>
/// Rules: an EventId is unique and, once assigned, never reused, not even after its event is removed (leave the
/// number out rather than give it to another event). The EventName is the method's name. Message texts are part of
/// operators' queries too: change one only on purpose, never while moving code.
/// </para>
/// <para>
/// Ids are grouped by area, a hundred each; a new event takes the next free id of its area, a new area the next free
/// hundred: 1000 webhooks, 1100 timers, 1200 rules, 1300 executions and workers, 1400 workflows (none yet),
/// 1500 inquiries, 1600 audit, 1700 bus and messaging, 1800 API, authentication and authorization, 1900 hosting.
/// An area may keep its events in a partial file of its own, <c>StormLogs.&lt;Area&gt;.cs</c> beside this one:
/// 2000-2049 Python actions and sensors (<c>StormLogs.Python.cs</c>), 2100-2149 pack configuration (<c>StormLogs.PackConfig.cs</c>),
/// 2200-2249 packs' virtualenvs (<c>StormLogs.PythonEnvironments.cs</c>), 2300-2349 sensors (<c>StormLogs.Sensors.cs</c>),
/// 2400-2449 the Python host (<c>StormLogs.PythonHost.cs</c>).
/// </para>
/// <para>docs/observability.md lists every event; a test keeps that table and this file in step.</para>
/// </remarks>
public static partial class StormLogs
{
    // 1000-1099: webhooks.

    [LoggerMessage(EventId = 1000, EventName = "WebhookAccepted", Level = LogLevel.Information, Message = "Webhook {Hook} accepted as trigger instance {Id} (trace {TraceTag})")]
    public static partial void WebhookAccepted(this ILogger logger, string hook, string id, string traceTag);

    [LoggerMessage(EventId = 1001, EventName = "WebhookRejected", Level = LogLevel.Warning, Message = "Webhook {Hook} rejected with {Status}: {Reason} (recorded as {Id})")]
    public static partial void WebhookRejected(this ILogger logger, string hook, int status, string reason, string id);

    [LoggerMessage(EventId = 1002, EventName = "WebhookRefusalsNotRecorded", Level = LogLevel.Warning, Message = "Webhook {Hook}: more than {Limit} refused deliveries this minute; the rest are refused without a record")]
    public static partial void WebhookRefusalsNotRecorded(this ILogger logger, string hook, int limit);

    // 1100-1199: timers.

    [LoggerMessage(EventId = 1100, EventName = "TimerChainEnded", Level = LogLevel.Information, Message = "Timer {Timer}'s tick for {At} ends its chain: no enabled rule has that timer any more")]
    public static partial void TimerChainEnded(this ILogger logger, string timer, DateTimeOffset at);

    [LoggerMessage(EventId = 1101, EventName = "TimerTickAlreadyHandled", Level = LogLevel.Debug, Message = "Tick {Id} was already handled by another copy; this one stops")]
    public static partial void TimerTickAlreadyHandled(this ILogger logger, string id);

    [LoggerMessage(EventId = 1102, EventName = "TimerSchedulingFailed", Level = LogLevel.Error, Message = "Scheduling the timers' next occurrences failed; the next round tries again")]
    public static partial void TimerSchedulingFailed(this ILogger logger, Exception error);

    [LoggerMessage(EventId = 1103, EventName = "TimerSchedulingAtStartFailed", Level = LogLevel.Error, Message = "Scheduling the timers at start failed; the hourly re-arm schedules them")]
    public static partial void TimerSchedulingAtStartFailed(this ILogger logger, Exception error);

    // 1200-1299: rules.

    [LoggerMessage(EventId = 1200, EventName = "RulesEvaluated", Level = LogLevel.Debug, Message = "Trigger instance {Id}: {Matched} rule(s) matched")]
    public static partial void RulesEvaluated(this ILogger logger, string id, int matched);

    [LoggerMessage(EventId = 1201, EventName = "RuleEnforcementFailed", Level = LogLevel.Warning, Message = "Rule {Rule} matched trigger instance {Id} but could not be enforced: {Reason}")]
    public static partial void RuleEnforcementFailed(this ILogger logger, string rule, string id, string reason);

    [LoggerMessage(EventId = 1202, EventName = "RuleCriterionRegexTimedOut", Level = LogLevel.Warning, Message = "Rule {Rule}: the regex of criterion {Key} timed out; counted as no match")]
    public static partial void RuleCriterionRegexTimedOut(this ILogger logger, string rule, string key);

    [LoggerMessage(EventId = 1203, EventName = "RuleCriterionNotEvaluated", Level = LogLevel.Debug, Message = "Rule {Rule}: criterion {Key} could not be evaluated ({Error}); counted as no match")]
    public static partial void RuleCriterionNotEvaluated(this ILogger logger, string rule, string key, string error);

    [LoggerMessage(EventId = 1204, EventName = "RuleCriterionPatternNotRendered", Level = LogLevel.Warning, Message = "Rule {Rule}: the pattern of criterion {Key} could not be rendered ({Error}); counted as no match")]
    public static partial void RuleCriterionPatternNotRendered(this ILogger logger, string rule, string key, string error);

    // 1300-1399: executions, their runners and the workers that run them.

    [LoggerMessage(EventId = 1300, EventName = "ExecutionFinished", Level = LogLevel.Information, Message = "Execution {Id} ({Action}) finished: {Status}")]
    public static partial void ExecutionFinished(this ILogger logger, string id, string action, string status);

    [LoggerMessage(EventId = 1301, EventName = "ExecutionAlreadyFinished", Level = LogLevel.Information, Message = "Execution {Id} is already {Status}; the duplicate request is ignored")]
    public static partial void ExecutionAlreadyFinished(this ILogger logger, string id, string status);

    [LoggerMessage(EventId = 1302, EventName = "ExecutionAlreadyRunning", Level = LogLevel.Information, Message = "Execution {Id} is already running elsewhere; the duplicate request is ignored")]
    public static partial void ExecutionAlreadyRunning(this ILogger logger, string id);

    [LoggerMessage(EventId = 1303, EventName = "ExecutionTakenOver", Level = LogLevel.Warning, Message = "Execution {Id} was running on worker {Worker}, which is gone; running it again here")]
    public static partial void ExecutionTakenOver(this ILogger logger, string id, string worker);

    [LoggerMessage(EventId = 1304, EventName = "ExecutionCancelRequested", Level = LogLevel.Information, Message = "Execution {Id} was asked to cancel; stopping its runner")]
    public static partial void ExecutionCancelRequested(this ILogger logger, string id);

    [LoggerMessage(EventId = 1305, EventName = "ExecutionDelayedByPolicy", Level = LogLevel.Information, Message = "Execution {Id} is delayed by concurrency policy {Policy} until a slot frees")]
    public static partial void ExecutionDelayedByPolicy(this ILogger logger, string id, string policy);

    [LoggerMessage(EventId = 1306, EventName = "ExecutionCanceledByPolicy", Level = LogLevel.Information, Message = "Execution {Id} is canceled by concurrency policy {Policy}")]
    public static partial void ExecutionCanceledByPolicy(this ILogger logger, string id, string policy);

    [LoggerMessage(EventId = 1307, EventName = "ExecutionRunnerThrew", Level = LogLevel.Error, Message = "The runner of execution {Id} ({Action}) threw")]
    public static partial void ExecutionRunnerThrew(this ILogger logger, string id, string action, Exception error);

    [LoggerMessage(EventId = 1308, EventName = "ExecutionSecretTooShortToSearch", Level = LogLevel.Warning, Message = "Execution {Id}: secret parameter(s) {Names} have a value shorter than {Minimum} characters; it is masked where it is kept, but not searched for in the output")]
    public static partial void ExecutionSecretTooShortToSearch(this ILogger logger, string id, string names, int minimum);

    [LoggerMessage(EventId = 1309, EventName = "ExecutionNotifyNotRendered", Level = LogLevel.Warning, Message = "Execution {Id}: the {When} notify message could not be rendered: {Error}")]
    public static partial void ExecutionNotifyNotRendered(this ILogger logger, string id, string when, string error);

    [LoggerMessage(EventId = 1310, EventName = "WorkerLeaseNotRenewed", Level = LogLevel.Warning, Message = "Worker {Worker} could not renew its lease ({Cause}); other workers may take over its running executions")]
    public static partial void WorkerLeaseNotRenewed(this ILogger logger, string worker, string cause);

    // 1400-1499: workflows (none yet).

    // 1500-1599: inquiries.

    [LoggerMessage(EventId = 1500, EventName = "InquiryAnswered", Level = LogLevel.Information, Message = "Inquiry {Id} answered by {User}")]
    public static partial void InquiryAnswered(this ILogger logger, string id, string user);

    [LoggerMessage(EventId = 1501, EventName = "InquiryTimedOut", Level = LogLevel.Information, Message = "Inquiry {Id} timed out without a response")]
    public static partial void InquiryTimedOut(this ILogger logger, string id);

    [LoggerMessage(EventId = 1502, EventName = "InquirySweepFailed", Level = LogLevel.Error, Message = "Timing out expired inquiries failed; the next sweep tries again")]
    public static partial void InquirySweepFailed(this ILogger logger, Exception error);

    // 1600-1699: the audit and its write-behind journal.

    [LoggerMessage(EventId = 1600, EventName = "AuditJournalTakenUp", Level = LogLevel.Warning, Message = "Taking up {Count} audit writes an earlier process left in the journal {Directory}")]
    public static partial void AuditJournalTakenUp(this ILogger logger, int count, string directory);

    [LoggerMessage(EventId = 1601, EventName = "AuditStorageUnavailable", Level = LogLevel.Warning, Message = "Storage is not taking the audit ({Kind} {Id}: {Cause}); writes stay in the journal and are tried again until it does")]
    public static partial void AuditStorageUnavailable(this ILogger logger, string kind, string id, string cause);

    [LoggerMessage(EventId = 1602, EventName = "AuditStorageAvailableAgain", Level = LogLevel.Information, Message = "Storage takes the audit again; what the journal held is stored")]
    public static partial void AuditStorageAvailableAgain(this ILogger logger);

    [LoggerMessage(EventId = 1603, EventName = "AuditStoreFailed", Level = LogLevel.Warning, Message = "Storing the audit's {Kind} {Id} failed; it stays in the journal and is tried again")]
    public static partial void AuditStoreFailed(this ILogger logger, Exception exception, string kind, string id);

    [LoggerMessage(EventId = 1604, EventName = "AuditJournalSegmentUpkeepFailed", Level = LogLevel.Warning, Message = "Closing the audit journal's written segments or preparing its next one failed; the store goes on")]
    public static partial void AuditJournalSegmentUpkeepFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1605, EventName = "AuditWritesLeftInJournal", Level = LogLevel.Error, Message = "Stopping with {Count} audit writes not stored; they stay in the journal and are stored at the next start")]
    public static partial void AuditWritesLeftInJournal(this ILogger logger, int count);

    [LoggerMessage(EventId = 1606, EventName = "AuditDeadLetterNotMarked", Level = LogLevel.Warning, Message = "{Id} is dead-lettered, but the audit could not be marked ({Cause}); the dead-letter list has the reason")]
    public static partial void AuditDeadLetterNotMarked(this ILogger logger, string id, string cause);

    [LoggerMessage(EventId = 1607, EventName = "AuditDayPurged", Level = LogLevel.Information, Message = "Audit retention purged {Day}: {Executions} execution(s), {TriggerInstances} trigger instance(s), {RuleEnforcements} rule enforcement(s), {Payloads} payload blob(s), {OutputRows} output row(s); kept {Kept} unfinished execution(s) ({Milliseconds} ms)")]
    public static partial void AuditDayPurged(this ILogger logger, DateOnly day, int executions, int triggerInstances, int ruleEnforcements, int payloads, int outputRows, int kept, long milliseconds);

    [LoggerMessage(EventId = 1608, EventName = "AuditPurgeRequested", Level = LogLevel.Warning, Message = "{User} purged the audit before {Before}: {Days} day(s), {Executions} execution(s); more left: {More}")]
    public static partial void AuditPurgeRequested(this ILogger logger, string user, string before, int days, int executions, bool more);

    [LoggerMessage(EventId = 1609, EventName = "AuditRetentionFailed", Level = LogLevel.Error, Message = "Purging the audit's expired days failed; the days purged stay purged and the next daily round goes on from there")]
    public static partial void AuditRetentionFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1610, EventName = "AuditDayDeletedWhole", Level = LogLevel.Information, Message = "Audit retention deleted {Day} whole: every record of the day (its tables, not counted row by row) and {Payloads} payload blob(s) ({Milliseconds} ms)")]
    public static partial void AuditDayDeletedWhole(this ILogger logger, DateOnly day, int payloads, long milliseconds);

    // 1700-1799: the bus, a ten per transport since each settles messages its own way (and says so):
    // 1700 the local SQLite bus, 1710 Storage queues, 1720 Service Bus, 1730 whichever transport.

    [LoggerMessage(EventId = 1700, EventName = "LocalMessageRetrying", Level = LogLevel.Warning, Message = "Message {Id} on {Queue} failed on delivery {Count} ({Cause}); it will be delivered again")]
    public static partial void LocalMessageRetrying(this ILogger logger, string id, string queue, int count, string cause);

    [LoggerMessage(EventId = 1701, EventName = "LocalMessageDeadLettered", Level = LogLevel.Error, Message = "Message {Id} on {Queue} was dead-lettered after {Count} deliveries: {Reason}")]
    public static partial void LocalMessageDeadLettered(this ILogger logger, string id, string queue, int count, string reason);

    [LoggerMessage(EventId = 1702, EventName = "LocalMessageOutcomeNotWritten", Level = LogLevel.Warning, Message = "{Count} message(s) on {Queue}: their outcome could not be written to the local bus file ({Cause}); they may be delivered again")]
    public static partial void LocalMessageOutcomeNotWritten(this ILogger logger, int count, string queue, string cause);

    [LoggerMessage(EventId = 1703, EventName = "LocalMessagesRecovered", Level = LogLevel.Information, Message = "{Count} message(s) an earlier run had accepted and not finished are queued again (from {File})")]
    public static partial void LocalMessagesRecovered(this ILogger logger, int count, string file);

    [LoggerMessage(EventId = 1710, EventName = "QueueMessageRetrying", Level = LogLevel.Warning, Message = "Message {Id} on {Queue} failed on delivery {Count}; it will be delivered again")]
    public static partial void QueueMessageRetrying(this ILogger logger, string id, string queue, int count, Exception error);

    [LoggerMessage(EventId = 1711, EventName = "QueueMessagePoisoned", Level = LogLevel.Error, Message = "Message {Id} on {Queue} was moved to the poison queue after {Count} deliveries: {Reason}")]
    public static partial void QueueMessagePoisoned(this ILogger logger, string id, string queue, int count, string reason);

    [LoggerMessage(EventId = 1712, EventName = "QueueReceiveFailed", Level = LogLevel.Warning, Message = "Receiving from {Queue} failed; retrying")]
    public static partial void QueueReceiveFailed(this ILogger logger, string queue, Exception error);

    [LoggerMessage(EventId = 1713, EventName = "QueueMessageNotReleased", Level = LogLevel.Warning, Message = "Could not release message {Id} on {Queue}; it reappears after its visibility timeout")]
    public static partial void QueueMessageNotReleased(this ILogger logger, string id, string queue, Exception error);

    [LoggerMessage(EventId = 1714, EventName = "QueueMessageNotKeptHidden", Level = LogLevel.Warning, Message = "Could not keep message {Id} on {Queue} hidden while it is handled; it may be delivered again meanwhile")]
    public static partial void QueueMessageNotKeptHidden(this ILogger logger, string id, string queue, Exception error);

    [LoggerMessage(EventId = 1720, EventName = "ServiceBusMessageAbandoned", Level = LogLevel.Warning, Message = "Message {Id} on {Queue} failed on delivery {Count}; abandoned for redelivery")]
    public static partial void ServiceBusMessageAbandoned(this ILogger logger, string id, string queue, int count, Exception error);

    [LoggerMessage(EventId = 1721, EventName = "ServiceBusMessageDeadLettered", Level = LogLevel.Error, Message = "Message {Id} on {Queue} failed {Count} times and was dead-lettered")]
    public static partial void ServiceBusMessageDeadLettered(this ILogger logger, string id, string queue, int count, Exception error);

    [LoggerMessage(EventId = 1722, EventName = "ServiceBusProcessorFailed", Level = LogLevel.Error, Message = "Service Bus processor error on {Queue} ({Source})")]
    public static partial void ServiceBusProcessorFailed(this ILogger logger, string queue, string source, Exception error);

    [LoggerMessage(EventId = 1730, EventName = "DeadLettersReplayed", Level = LogLevel.Information, Message = "{User} replayed {Count} dead-lettered message(s): {Which}")]
    public static partial void DeadLettersReplayed(this ILogger logger, string user, int count, string which);

    // 1800-1899: the API, authentication and authorization.

    [LoggerMessage(EventId = 1800, EventName = "ApiRequestRefused", Level = LogLevel.Warning, Message = "Refused {Method} {Path} with {Status}: {Reason}")]
    public static partial void ApiRequestRefused(this ILogger logger, string method, string path, int status, string reason);

    [LoggerMessage(EventId = 1801, EventName = "ApiRequestUnauthenticated", Level = LogLevel.Warning, Message = "Unauthenticated {Method} {Path} refused: {Reason}")]
    public static partial void ApiRequestUnauthenticated(this ILogger logger, string method, string path, string reason);

    [LoggerMessage(EventId = 1802, EventName = "PermissionDenied", Level = LogLevel.Warning, Message = "Denied: user {User} lacks {Permission} on {Resource}")]
    public static partial void PermissionDenied(this ILogger logger, string user, string permission, string resource);

    [LoggerMessage(EventId = 1803, EventName = "AdminOnlyDenied", Level = LogLevel.Warning, Message = "Denied: user {User}: {Reason}")]
    public static partial void AdminOnlyDenied(this ILogger logger, string user, string reason);

    [LoggerMessage(EventId = 1804, EventName = "DatastoreKeyChanged", Level = LogLevel.Information, Message = "Datastore key {Scope}:{Owner}:{Name} {Change} by {User}")]
    public static partial void DatastoreKeyChanged(this ILogger logger, string change, string scope, string name, string owner, string user);

    [LoggerMessage(EventId = 1805, EventName = "HtpasswdLineSkipped", Level = LogLevel.Warning, Message = "{Path} line {Line} (user {User}) is skipped: only bcrypt (htpasswd -B), $apr1$ MD5 and {{SHA}} hashes are accepted; set the password again with htpasswd -B")]
    public static partial void HtpasswdLineSkipped(this ILogger logger, string path, int line, string user);

    [LoggerMessage(EventId = 1806, EventName = "EntraTokenRefused", Level = LogLevel.Warning, Message = "An Entra ID token was refused: {Reason}")]
    public static partial void EntraTokenRefused(this ILogger logger, string reason);

    [LoggerMessage(EventId = 1807, EventName = "EntraSigningKeysUnavailable", Level = LogLevel.Error, Message = "Entra ID's signing keys could not be read: {Reason}")]
    public static partial void EntraSigningKeysUnavailable(this ILogger logger, string reason);

    // 1900-1999: hosting.

    [LoggerMessage(EventId = 1900, EventName = "EngineStarted", Level = LogLevel.Information, Message = "Rules engine, action runners and timers are running")]
    public static partial void EngineStarted(this ILogger logger);

    [LoggerMessage(EventId = 1901, EventName = "PackLeftOut", Level = LogLevel.Error, Message = "Pack {Pack} ({Directory}) is left out: {Count} problem(s), the first: {Problem}")]
    public static partial void PackLeftOut(this ILogger logger, string pack, string directory, int count, string problem);

    [LoggerMessage(EventId = 1902, EventName = "PackWarning", Level = LogLevel.Warning, Message = "Pack {Pack}: {Warning}")]
    public static partial void PackWarning(this ILogger logger, string pack, string warning);
}
