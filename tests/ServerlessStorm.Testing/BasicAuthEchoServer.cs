using System.Text;

namespace ServerlessStorm.Testing;

/// <summary>An HTTP service on loopback that answers every request with the basic-auth credentials it was sent.</summary>
public sealed class BasicAuthEchoServer : IDisposable
{
    private readonly LoopbackHttpServer _server;
    private int _requests;

    public BasicAuthEchoServer() => _server = new LoopbackHttpServer(async context =>
    {
        Interlocked.Increment(ref _requests);
        var header = context.Request.Headers["Authorization"] ?? "";
        var credentials = header.StartsWith("Basic ", StringComparison.Ordinal) ? Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..])) : "";
        var answer = Encoding.UTF8.GetBytes("you sent " + credentials);
        context.Response.ContentType = "text/plain";
        await context.Response.OutputStream.WriteAsync(answer);
        context.Response.Close();
    });

    public string Url => _server.Url + "/";

    public int Requests => Volatile.Read(ref _requests);

    public void Dispose() => _server.Dispose();
}
