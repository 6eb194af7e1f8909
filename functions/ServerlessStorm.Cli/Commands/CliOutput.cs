using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessStorm.Cli.Client;

namespace ServerlessStorm.Cli.Commands;

/// <summary>Exit codes and printing shared by the commands.</summary>
internal static class CliOutput
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int InvalidInput = 2;
    public const int Unreachable = 3;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Json(JsonNode? node) => node?.ToJsonString(Indented) ?? "null";

    public static int Error(string message, int code = InvalidInput)
    {
        Console.Error.WriteLine($"error: {message}");
        return code;
    }

    /// <summary>Runs a client command, turning an unreachable API into a clear message and exit code 3.</summary>
    public static async Task<int> WithClientAsync(string? api, Func<StormClient, Task<int>> action)
    {
        var url = StormClient.ResolveUrl(api);
        using var client = new StormClient(url, StormClient.ResolveCredential(url));
        try
        {
            return await action(client);
        }
        catch (StormUnreachableException ex)
        {
            return Error(ex.Message, Unreachable);
        }
    }

    public static System.CommandLine.Option<string?> ApiOption() => new("--api")
    {
        Description = $"The API's base URL (default ${StormClient.UrlVariable} or {StormClient.DefaultUrl})",
    };
}
