using ServerlessStorm.Cli.Client;
using ServerlessStorm.Cli.Serve;

namespace ServerlessStorm.Benchmarks;

/// <summary>HTTP clients for a benchmarked server, carrying the administrator key it filed (in a file of the benchmark's own).</summary>
internal static class ServerClients
{
    public static string CredentialsFile { get; } = Path.Combine(Path.GetTempPath(), $"storm-bench-{Environment.ProcessId}", "credentials.json");

    public static HttpClient For(StormServer server)
    {
        var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        if (server.CredentialsFilePath is { } path && Cli.Client.CredentialsFile.Read(new Uri(server.Url), path) is { } key)
        {
            http.DefaultRequestHeaders.Add("St2-Api-Key", key);
        }

        return http;
    }
}
