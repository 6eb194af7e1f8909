using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
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
}

/// <summary>A trigger instance's status set after it was recorded.</summary>
public sealed record TriggerInstanceStatusChange(string Id, DateTimeOffset OccurredAt, string Status, string? Reason);

/// <summary>
/// The write-ahead log of the audit written behind the pipeline: every write is appended (one line of JSON) before
/// the write returns, so what a process accepted survives the process dying before the audit's storage has it. A
/// write reaches the operating system, not the disk (no fsync): it survives a crash or kill of the process, not a
/// power cut. The log is kept in numbered segments; a segment is deleted once everything in it is stored.
/// </summary>
public sealed class AuditJournal : IDisposable
{
    private readonly string _directory;
    private readonly ArrayBufferWriter<byte> _line = new(4096);
    private FileStream _segment;
    private long _segmentNumber;

    private AuditJournal(string directory, long firstSegment)
    {
        _directory = directory;
        _segmentNumber = firstSegment;
        _segment = OpenSegment(firstSegment);
    }

    /// <summary>Opens the journal in <paramref name="directory"/>; <paramref name="left"/> is what earlier processes left unstored, oldest first.</summary>
    public static AuditJournal Open(string directory, out IReadOnlyList<AuditJournalEntry> left)
    {
        Directory.CreateDirectory(directory);
        var segments = Segments(directory);
        var entries = new List<AuditJournalEntry>();
        foreach (var (_, path) in segments)
        {
            ReadSegment(path, entries);
        }

        left = entries;
        return new AuditJournal(directory, segments.Count == 0 ? 1 : segments[^1].Number + 1);
    }

    /// <summary>The number of the segment being written.</summary>
    public long CurrentSegment => _segmentNumber;

    /// <summary>Appends one write; it is in the operating system's hands when this returns. Callers serialize calls.</summary>
    public void Append(AuditJournalEntry entry)
    {
        _line.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(_line))
        {
            JsonSerializer.Serialize(writer, entry, AuditJournalJson.Default.AuditJournalEntry);
        }

        _line.Write("\n"u8);
        _segment.Write(_line.WrittenSpan);
    }

    /// <summary>Starts a new segment when the current one holds anything; returns the number of the last closed segment.</summary>
    public long Rotate()
    {
        if (_segment.Length > 0)
        {
            _segment.Dispose();
            _segment = OpenSegment(++_segmentNumber);
        }

        return _segmentNumber - 1;
    }

    /// <summary>Deletes the segments up to <paramref name="last"/>: everything in them is stored.</summary>
    public void DeleteThrough(long last)
    {
        foreach (var (number, path) in Segments(_directory))
        {
            if (number <= last && number != _segmentNumber)
            {
                File.Delete(path);
            }
        }
    }

    public void Dispose()
    {
        var empty = _segment.Length == 0;
        _segment.Dispose();
        if (empty)
        {
            File.Delete(_segment.Name);
        }
    }

    private FileStream OpenSegment(long number) =>
        // No buffer: each Write is a write to the file, so a killed process loses nothing it appended.
        new(Path.Combine(_directory, number.ToString("D10", CultureInfo.InvariantCulture) + ".jsonl"), FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);

    private static List<(long Number, string Path)> Segments(string directory) =>
        [.. Directory.EnumerateFiles(directory, "*.jsonl")
            .Select(path => (Ok: long.TryParse(Path.GetFileNameWithoutExtension(path), NumberStyles.None, CultureInfo.InvariantCulture, out var n), Number: n, Path: path))
            .Where(s => s.Ok)
            .Select(s => (s.Number, s.Path))
            .OrderBy(s => s.Number)];

    private static void ReadSegment(string path, List<AuditJournalEntry> entries)
    {
        var lines = File.ReadAllLines(path);
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }

            try
            {
                entries.Add(JsonSerializer.Deserialize(lines[i], AuditJournalJson.Default.AuditJournalEntry) ?? throw new JsonException("null entry"));
            }
            catch (JsonException) when (i == lines.Length - 1)
            {
                // The last line of a segment can be cut short by the process dying mid-write; that write never returned.
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"audit journal {path}, line {i + 1}: {ex.Message}", ex);
            }
        }
    }
}

// Generated serialization: the journal is written on the pipeline's path, and reflection costs there.
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditJournalEntry))]
internal sealed partial class AuditJournalJson : JsonSerializerContext;
