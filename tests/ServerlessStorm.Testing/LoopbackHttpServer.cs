using System.Net;

namespace ServerlessStorm.Testing;

/// <summary>An HTTP service on a free loopback port that hands every request to <c>handle</c>, until disposed.</summary>
public sealed class LoopbackHttpServer : IDisposable
{
    private readonly HttpListener _listener = new();

    public LoopbackHttpServer(Func<HttpListenerContext, Task> handle)
    {
        Url = $"http://127.0.0.1:{AzuriteFixture.FreePort()}";
        _listener.Prefixes.Add(Url + "/");
        _listener.Start();
        _ = Task.Run(async () =>
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                await handle(context);
            }
        });
    }

    /// <summary>The base address, without a trailing slash.</summary>
    public string Url { get; }

    public void Dispose() => _listener.Close();
}
