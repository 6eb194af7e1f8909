using System.Text.Json.Nodes;

namespace ServerlessStorm.Cli.Client;

/// <summary>
/// The local API keys file (<c>~/.storm/credentials.json</c>, or <c>$STORM_CREDENTIALS_FILE</c>), readable only by its
/// user: <c>storm serve</c> writes the administrator key it made under its own address, and the CLI sends it only to
/// that address, so a key for the local server never goes to another one.
/// </summary>
public static class CredentialsFile
{
    public const string PathVariable = "STORM_CREDENTIALS_FILE";

    public static string DefaultPath =>
        Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } path
            ? path
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".storm", "credentials.json");

    /// <summary>The address a key is filed under: loopback names are one server, told apart by port.</summary>
    public static string ServerKey(Uri api)
    {
        var host = api.IsLoopback || api.Host is "0.0.0.0" or "[::]" or "::" ? "127.0.0.1" : api.Host.ToLowerInvariant();
        return $"{api.Scheme}://{host}:{api.Port}";
    }

    /// <summary>The key filed for <paramref name="api"/>, or null.</summary>
    public static string? Read(Uri api, string? path = null)
    {
        path ??= DefaultPath;
        try
        {
            return File.Exists(path) && JsonNode.Parse(File.ReadAllText(path))?["servers"]?[ServerKey(api)]?["api_key"] is JsonValue v && v.TryGetValue<string>(out var key) ? key : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>Files <paramref name="key"/> for <paramref name="api"/>, keeping other servers' keys; the file is 0600 in a 0700 folder.</summary>
    public static void Write(Uri api, string user, string key, string? path = null)
    {
        path ??= DefaultPath;
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(folder))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(folder);
            }
            else
            {
                Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        // Servers started side by side each add their own entry: one writer at a time, and a rename so no reader
        // sees half a file.
        using var gate = AcquireLock(path + ".lock");
        JsonObject document;
        try
        {
            document = File.Exists(path) && JsonNode.Parse(File.ReadAllText(path)) is JsonObject existing ? existing : [];
        }
        catch (System.Text.Json.JsonException)
        {
            document = [];
        }

        if (document["servers"] is not JsonObject servers)
        {
            document["servers"] = servers = [];
        }

        servers[ServerKey(api)] = new JsonObject { ["user"] = user, ["api_key"] = key };
        // A new file of a name nobody could have prepared, private from its creation, then moved over the old one.
        var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(document.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(temporary, path, overwrite: true);
    }

    private static FileStream AcquireLock(string path)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }
}
