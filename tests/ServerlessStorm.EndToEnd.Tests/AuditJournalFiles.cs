namespace ServerlessStorm.EndToEnd.Tests;

/// <summary>Reads a write-behind audit journal from outside the server that writes it.</summary>
internal static class AuditJournalFiles
{
    /// <summary>Every segment under <paramref name="folder"/>, concatenated; empty when there is none.</summary>
    public static string ReadAll(string folder) => Directory.Exists(folder)
        ? string.Concat(Directory.EnumerateFiles(folder, "*.jsonl", SearchOption.AllDirectories).Select(path =>
        {
            // The server keeps writing and deleting segments while this reads.
            try
            {
                using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
                return reader.ReadToEnd();
            }
            catch (FileNotFoundException)
            {
                return "";
            }
        }))
        : "";
}
