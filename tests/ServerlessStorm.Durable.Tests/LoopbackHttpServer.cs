using System.Collections.Concurrent;
using System.Net;

namespace ServerlessStorm.Durable.Tests;

/// <summary>
/// A real HTTP server on a free loopback port: paths starting with <c>up/</c> answer 200, <c>down</c> 503, anything
/// else 200; every request is recorded with its body.
/// </summary>
public sealed class LoopbackHttpServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly int _port;

    public LoopbackHttpServer()
    {
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            _port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        _listener.Prefixes.Add($"http://127.0.0.1:{_port}/");
        _listener.Start();
        _ = ServeAsync();
    }

    public ConcurrentQueue<(string Path, string Body)> Received { get; } = new();

    public string Url(string path) => $"http://127.0.0.1:{_port}/{path}";

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception) when (!_listener.IsListening)
            {
                return;
            }

            using (var reader = new StreamReader(context.Request.InputStream))
            {
                Received.Enqueue((context.Request.Url!.AbsolutePath, await reader.ReadToEndAsync()));
            }

            context.Response.StatusCode = context.Request.Url.AbsolutePath == "/down" ? 503 : 200;
            context.Response.ContentType = "application/json";
            await using (var writer = new StreamWriter(context.Response.OutputStream))
            {
                await writer.WriteAsync("""{"ok": true}""");
            }

            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
    }
}
