using System.Net;
using System.Text;

namespace ServerlessStorm.Testing;

/// <summary>An HTTP service on loopback that answers every request with the basic-auth credentials it was sent.</summary>
public sealed class BasicAuthEchoServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private int _requests;

    public BasicAuthEchoServer()
    {
        Url = $"http://127.0.0.1:{AzuriteFixture.FreePort()}/";
        _listener.Prefixes.Add(Url);
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

                Interlocked.Increment(ref _requests);
                var header = context.Request.Headers["Authorization"] ?? "";
                var credentials = header.StartsWith("Basic ", StringComparison.Ordinal) ? Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..])) : "";
                var answer = Encoding.UTF8.GetBytes("you sent " + credentials);
                context.Response.ContentType = "text/plain";
                await context.Response.OutputStream.WriteAsync(answer);
                context.Response.Close();
            }
        });
    }

    public string Url { get; }

    public int Requests => Volatile.Read(ref _requests);

    public void Dispose() => _listener.Close();
}
