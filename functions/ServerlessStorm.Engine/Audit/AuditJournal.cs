using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.MemoryMappedFiles;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using ServerlessStorm.Engine.Diagnostics;
using ServerlessStorm.Engine.Executions;

namespace ServerlessStorm.Engine.Audit;

/// <summary>One audit write as the journal keeps it: exactly one of the records is set.</summary>
public sealed record AuditJournalEntry
{
    public TriggerInstanceRecord? TriggerInstance { get; init; }

    public TriggerInstanceStatusChange? TriggerInstanceStatus { get; init; }

    public RuleEnforcementRecord? RuleEnforcement { get; init; }

    /// <summary>The execution as it is after the write (created or updated).</summary>
    public ExecutionRecord? Execution { get; init; }

    /// <summary>An update of an execution written whole earlier in the same segment: only what an update changes.</summary>
    public ExecutionChange? ExecutionChange { get; init; }
}

/// <summary>
/// An execution's update as the journal keeps it when the execution is written whole earlier in the same segment
/// (so replaying a segment always has it): its status, the history added, and the outcome. Most updates of an
/// execution are status changes, and writing them whole would serialize the parameters again each time.
/// </summary>
public sealed record ExecutionChange(string Id, string Status, IReadOnlyList<StatusChange> Added, DateTimeOffset? EndTimestamp, JsonNode? Result, string? Error)
{
    public JsonNode? SealedResult { get; init; }

    public string? Worker { get; init; }

    /// <summary>The change from <paramref name="before"/> to <paramref name="after"/>, or null when more than an update's fields differ.</summary>
    public static ExecutionChange? Between(ExecutionRecord before, ExecutionRecord after)
    {
        if (after.History.Count < before.History.Count
            || !after.History.Take(before.History.Count).SequenceEqual(before.History)
            || !SameUnchangingFields(before, after))
        {
            return null;
        }

        return new ExecutionChange(after.Id, after.Status, [.. after.History.Skip(before.History.Count)], after.EndTimestamp, after.Result, after.Error)
        {
            SealedResult = after.SealedResult,
            Worker = after.Worker,
        };
    }

    /// <summary>The execution after this change, from the execution before it.</summary>
    public ExecutionRecord ApplyTo(ExecutionRecord before)
    {
        var after = before.Clone();
        after.Status = Status;
        after.History.AddRange(Added);
        after.EndTimestamp = EndTimestamp;
        after.Result = Result?.DeepClone();
        after.SealedResult = SealedResult?.DeepClone();
        after.Error = Error;
        after.Worker = Worker;
        return after;
    }

    private static bool SameUnchangingFields(ExecutionRecord a, ExecutionRecord b) =>
        a.Id == b.Id && a.ActionRef == b.ActionRef && a.RunnerType == b.RunnerType && a.TraceTag == b.TraceTag
        && a.TriggerInstanceId == b.TriggerInstanceId && a.RuleRef == b.RuleRef && a.User == b.User && a.ReRunOf == b.ReRunOf
        && a.ParentId == b.ParentId && a.WorkflowTask == b.WorkflowTask && a.RetryCount == b.RetryCount
        && a.StartTimestamp == b.StartTimestamp
        && (a.ReRunTasks ?? []).SequenceEqual(b.ReRunTasks ?? [])
        && JsonNode.DeepEquals(a.Parameters, b.Parameters)
        && JsonNode.DeepEquals(a.SealedParameters, b.SealedParameters);
}

/// <summary>A trigger instance's status set after it was recorded.</summary>
public sealed record TriggerInstanceStatusChange(string Id, DateTimeOffset OccurredAt, string Status, string? Reason);

/// <summary>The audit journal cannot be opened: its lock cannot be taken. (A journal whose content cannot be read throws <see cref="InvalidDataException"/>.)</summary>
public class AuditJournalException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>Another journal holds the folder: one process (and one store in it) writes a journal folder at a time.</summary>
public sealed class AuditJournalInUseException(string directory, IOException inner)
    : AuditJournalException($"the audit journal '{Path.GetFullPath(directory)}' is in use by another running server's write-behind audit; give each server its own journal folder", inner)
{
    public string JournalDirectory { get; } = directory;
}

/// <summary>
/// The write-ahead log of the audit written behind the pipeline: every write is appended (one line of JSON) before
/// the write returns, so what a process accepted survives the process dying before the audit's storage has it. A
/// write reaches the operating system before it returns, and the disk within a pass of the store. The log is kept in numbered segments; a segment is deleted once everything in it is stored.
/// </summary>
/// <remarks>
/// A segment is a file mapped into memory (shared with the operating system's page cache), so an append is a copy
/// into memory, not a system call, and is the kernel's as soon as it is copied: a killed process cannot take it
/// along. A segment is created at its full size and is cut to what it holds when it is closed; after a kill, the
/// unwritten rest reads as zero bytes, where reading stops. A closed segment is synced to the disk (closing is off the
/// pipeline's path, once per pass of the store), so a power cut can lose only the segment being written: the writes
/// since the last pass began, about one gathering delay while storage keeps up.
/// One journal at a time holds a folder's lock file: a second writer's clean-up would delete segments the first has
/// not stored. The operating system drops the lock when its holder dies, so a killed process never leaves it behind.
/// </remarks>
public sealed class AuditJournal : IDisposable
{
    /// <summary>The size a segment is created at; a write larger than that gets a segment of its own size.</summary>
    public const int DefaultSegmentBytes = 1 << 20;

    private const string LockFileName = "journal.lock";

    private readonly string _directory;
    private readonly FileStream _lock;
    private readonly int _segmentBytes;
    private readonly ArrayBufferWriter<byte> _line = new(4096);
    private readonly Utf8JsonWriter _writer;
    private readonly Lock _spareGate = new();
    private readonly List<Segment> _retired = [];
    private Segment _segment;
    private Segment? _spare;
    private bool _abandoned;

    private AuditJournal(string directory, FileStream held, long firstSegment, int segmentBytes)
    {
        _directory = directory;
        _lock = held;
        _segmentBytes = segmentBytes;
        _writer = new Utf8JsonWriter(_line);
        _segment = Segment.Create(directory, firstSegment, segmentBytes);
        _segment.Prefault();
    }

    /// <summary>Opens the journal in <paramref name="directory"/>; <paramref name="left"/> is what earlier processes left unstored, oldest first.</summary>
    public static AuditJournal Open(string directory, out IReadOnlyList<AuditJournalEntry> left, int segmentBytes = DefaultSegmentBytes)
    {
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AuditJournalException($"the audit journal's folder '{Path.GetFullPath(directory)}' cannot be created: {ex.Message}", ex);
        }

        var held = Lock(directory);
        try
        {
            var segments = Segments(directory);
            var entries = new List<AuditJournalEntry>();
            foreach (var (_, path) in segments)
            {
                ReadSegment(path, entries);
            }

            left = entries;
            return new AuditJournal(directory, held, segments.Count == 0 ? 1 : segments[^1].Number + 1, segmentBytes);
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    // An exclusive open is an flock on Unix and a sharing lock on Windows: held until closed or the process ends.
    // The file is never deleted; deleting it would let two writers each lock a file of that name.
    private static FileStream Lock(string directory)
    {
        if (FileLockingDisabled())
        {
            throw new AuditJournalException($"the audit journal '{Path.GetFullPath(directory)}' needs file locks, and .NET's are switched off "
                + "(DOTNET_SYSTEM_IO_DISABLEFILELOCKING or System.IO.DisableFileLocking): without them two servers could share it and delete each other's unstored writes");
        }

        var path = Path.Combine(directory, LockFileName);
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex) when (IsHeldElsewhere(ex))
        {
            throw new AuditJournalInUseException(directory, ex);
        }
        catch (IOException ex)
        {
            throw new AuditJournalException($"the audit journal's lock file '{Path.GetFullPath(path)}' cannot be opened: {ex.Message}", ex);
        }
    }

    // Unix: flock's EWOULDBLOCK (11 on Linux, 35 on macOS); Windows: a sharing or lock violation.
    private static bool IsHeldElsewhere(IOException ex) =>
        OperatingSystem.IsWindows() ? (ex.HResult & 0xFFFF) is 32 or 33 : ex.HResult == (OperatingSystem.IsLinux() ? 11 : 35);

    // The same setting .NET reads to skip its locks.
    private static bool FileLockingDisabled() =>
        (AppContext.TryGetSwitch("System.IO.DisableFileLocking", out var disabled) && disabled)
        || Environment.GetEnvironmentVariable("DOTNET_SYSTEM_IO_DISABLEFILELOCKING") is { } value
            && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase));

    /// <summary>The journal's folder, in full.</summary>
    public string FullPath => Path.GetFullPath(_directory);

    /// <summary>The number of the segment being written.</summary>
    public long CurrentSegment => _segment.Number;

    /// <summary>Appends one write; it is in the operating system's hands when this returns. Callers serialize calls.</summary>
    public void Append(AuditJournalEntry entry)
    {
        var started = Stopwatch.GetTimestamp();
        Serialize(entry);
        if (!_segment.TryWrite(_line.WrittenSpan))
        {
            // Full: the next segment, at least as large as this write.
            Retire(Math.Max(_segmentBytes, _line.WrittenCount));
            _segment.TryWrite(_line.WrittenSpan);
        }

        Timed(started, entry);
    }

    /// <summary>
    /// Appends one write if it goes into segment <paramref name="segment"/> (the current one, with room for it);
    /// false, and nothing appended, otherwise. Callers serialize calls.
    /// </summary>
    public bool TryAppendTo(long segment, AuditJournalEntry entry)
    {
        if (segment != _segment.Number)
        {
            return false;
        }

        var started = Stopwatch.GetTimestamp();
        Serialize(entry);
        if (!_segment.TryWrite(_line.WrittenSpan))
        {
            return false;
        }

        Timed(started, entry);
        return true;
    }

    private void Serialize(AuditJournalEntry entry)
    {
        _line.ResetWrittenCount();
        _writer.Reset(_line);
        JsonSerializer.Serialize(_writer, entry, AuditJournalJson.Default.AuditJournalEntry);
        _line.Write("\n"u8);
    }

    private static void Timed(long started, AuditJournalEntry entry) =>
        StormMetrics.JournalAppend.Record(Stopwatch.GetElapsedTime(started).TotalMicroseconds, new KeyValuePair<string, object?>("kind", entry switch
        {
            { Execution: not null } => "execution",
            { ExecutionChange: not null } => "execution_change",
            { TriggerInstance: not null } => "trigger_instance",
            { TriggerInstanceStatus: not null } => "trigger_instance_status",
            _ => "rule_enforcement",
        }));

    /// <summary>Starts a new segment when the current one holds anything; returns the number of the last closed segment.</summary>
    public long Rotate()
    {
        if (_segment.Written == 0)
        {
            return _segment.Number - 1;
        }

        var last = _segment.Number;
        Retire(_segmentBytes);
        return last;
    }

    /// <summary>
    /// Closes the segments written to the end and makes the next one ready, so that starting a segment on the
    /// pipeline's path is a swap. Call it off the path, between <see cref="Rotate"/>s; it needs no lock of the caller's.
    /// </summary>
    public void Tidy()
    {
        Segment[] retired;
        long next;
        lock (_spareGate)
        {
            retired = [.. _retired];
            _retired.Clear();
            next = _spare is null ? _segment.Number + 1 : 0;
        }

        // Each one closed even when another fails; what they hold is in the files either way.
        List<Exception>? failures = null;
        foreach (var segment in retired)
        {
            try
            {
                segment.Close();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                (failures ??= []).Add(ex);
            }
        }

        if (failures is not null)
        {
            throw new AuditJournalException($"closing a journal segment (syncing it to the disk) failed: {failures[0].Message}", failures[0]);
        }

        if (next == 0)
        {
            return;
        }

        // The first write to each page of a new file costs the writer a page fault (tens of µs); taking them all
        // here keeps them off the path.
        var spare = Segment.Create(_directory, next, _segmentBytes);
        spare.Prefault();
        lock (_spareGate)
        {
            if (_spare is null && spare.Number > _segment.Number)
            {
                _spare = spare;
                return;
            }
        }

        spare.Close();
    }

    // Under the caller's lock: the current segment is done; the spare (or a new one) takes its place.
    private void Retire(long capacity)
    {
        lock (_spareGate)
        {
            Segment next;
            if (_spare is { } spare && spare.Capacity >= capacity)
            {
                next = spare;
                _spare = null;
            }
            else
            {
                next = Segment.Create(_directory, Math.Max(_segment.Number, _spare?.Number ?? 0) + 1, capacity);
                if (_spare is { } tooSmall)
                {
                    // Numbered below the new one, it must never be written: it goes, empty.
                    _retired.Add(tooSmall);
                    _spare = null;
                }
            }

            _retired.Add(_segment);
            _segment = next;
        }
    }

    /// <summary>Deletes the segments up to <paramref name="last"/>: everything in them is stored. Closed segments only, so no lock is needed.</summary>
    public void DeleteThrough(long last)
    {
        foreach (var (number, path) in Segments(_directory))
        {
            if (number <= last)
            {
                File.Delete(path);
            }
        }
    }

    public void Dispose()
    {
        if (_abandoned)
        {
            return;
        }

        try
        {
            foreach (var segment in (Segment?[])[.. _retired, _segment, _spare])
            {
                try
                {
                    segment?.Close();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Left at its full size: the next start reads it up to its zeros, as after a kill.
                }
            }
        }
        finally
        {
            _writer.Dispose();
            _lock.Dispose();
        }
    }

    /// <summary>
    /// Lets go of everything as a killed process does: segments stay at their full size with zeros after the last
    /// write, nothing is cut or deleted, and the lock is released. For tests that simulate a process dying.
    /// </summary>
    internal void AbandonAsIfKilled()
    {
        _abandoned = true;
        foreach (var segment in _retired)
        {
            segment.Unmap();
        }

        _segment.Unmap();
        _spare?.Unmap();
        _lock.Dispose();
    }

    private static List<(long Number, string Path)> Segments(string directory) =>
        [.. Directory.EnumerateFiles(directory, "*.jsonl")
            .Select(path => (Ok: long.TryParse(Path.GetFileNameWithoutExtension(path), NumberStyles.None, CultureInfo.InvariantCulture, out var n), Number: n, Path: path))
            .Where(s => s.Ok)
            .Select(s => (s.Number, s.Path))
            .OrderBy(s => s.Number)];

    private static void ReadSegment(string path, List<AuditJournalEntry> entries)
    {
        byte[] bytes;
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            bytes = new byte[file.Length];
            file.ReadExactly(bytes);
        }

        // A segment left by a killed process is zeros after its last write.
        var content = bytes.AsSpan();
        var end = content.IndexOf((byte)0);
        if (end >= 0)
        {
            content = content[..end];
        }

        var lineNumber = 0;
        while (!content.IsEmpty)
        {
            lineNumber++;
            var newline = content.IndexOf((byte)'\n');
            var line = newline < 0 ? content : content[..newline];
            content = newline < 0 ? [] : content[(newline + 1)..];
            if (line.IsEmpty)
            {
                continue;
            }

            try
            {
                entries.Add(JsonSerializer.Deserialize(line, AuditJournalJson.Default.AuditJournalEntry) ?? throw new JsonException("null entry"));
            }
            catch (JsonException) when (content.IsEmpty)
            {
                // The last line of a segment can be cut short by the process dying mid-write; that write never returned.
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"audit journal {path}, line {lineNumber}: {ex.Message}", ex);
            }
        }
    }

    /// <summary>One segment file, mapped for writing.</summary>
    private sealed class Segment
    {
        private readonly FileStream _file;
        private readonly MemoryMappedFile _map;
        private readonly MemoryMappedViewStream _view;
        private readonly long _capacity;

        private Segment(long number, FileStream file, long capacity)
        {
            Number = number;
            _file = file;
            _capacity = capacity;
            _file.SetLength(capacity);
            _map = MemoryMappedFile.CreateFromFile(file, null, capacity, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
            _view = _map.CreateViewStream(0, capacity, MemoryMappedFileAccess.ReadWrite);
        }

        public long Number { get; }

        public long Written => _view.Position;

        public long Capacity => _capacity;

        // A number some other journal already took (one that was not closed) is skipped, not shared.
        public static Segment Create(string directory, long number, long capacity)
        {
            while (true)
            {
                var path = Path.Combine(directory, number.ToString("D10", CultureInfo.InvariantCulture) + ".jsonl");
                try
                {
                    return new Segment(number, new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read), capacity);
                }
                catch (IOException) when (File.Exists(path))
                {
                    number++;
                }
            }
        }

        /// <summary>Touches every page (writing a zero where there is one), so writes to it do not fault.</summary>
        public void Prefault()
        {
            var position = _view.Position;
            for (var page = position; page < _capacity; page += Environment.SystemPageSize)
            {
                _view.Position = page;
                _view.WriteByte(0);
            }

            _view.Position = position;
        }

        public bool TryWrite(ReadOnlySpan<byte> line)
        {
            if (_view.Position + line.Length > _capacity)
            {
                return false;
            }

            _view.Write(line);
            return true;
        }

        public void Unmap()
        {
            _view.Dispose();
            _map.Dispose();
            _file.Dispose();
        }

        /// <summary>Unmaps the segment, cuts it to what it holds and syncs it to the disk; an empty one is deleted.</summary>
        public void Close()
        {
            var written = _view.Position;
            try
            {
                if (written > 0)
                {
                    _view.Flush();
                }
            }
            finally
            {
                _view.Dispose();
                _map.Dispose();
            }

            var path = _file.Name;
            try
            {
                _file.SetLength(written);
                if (written > 0)
                {
                    _file.Flush(flushToDisk: true);
                }
            }
            finally
            {
                _file.Dispose();
            }

            if (written == 0)
            {
                File.Delete(path);
            }
        }
    }
}

// Generated serialization: the journal is written on the pipeline's path, and reflection costs there.
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditJournalEntry))]
internal sealed partial class AuditJournalJson : JsonSerializerContext;
