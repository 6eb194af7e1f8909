using System.Collections.Concurrent;
using System.Text;

namespace ServerlessStorm.Testing;

/// <summary>A stand-in OTLP/HTTP collector: takes every export, answers 200 and keeps its bytes by path.</summary>
public sealed class OtlpCollector : IDisposable
{
    private readonly ConcurrentQueue<(string Path, byte[] Body)> _received = new();
    private readonly LoopbackHttpServer _server;

    public OtlpCollector() => _server = new LoopbackHttpServer(async context =>
    {
        using var body = new MemoryStream();
        await context.Request.InputStream.CopyToAsync(body);
        _received.Enqueue((context.Request.Url!.AbsolutePath, body.ToArray()));
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/x-protobuf";
        context.Response.Close();
    });

    public string Url => _server.Url;

    public int Requests => _received.Count;

    public long Bytes => _received.Sum(r => (long)r.Body.Length);

    public IReadOnlySet<string> Paths => _received.Select(r => r.Path).ToHashSet();

    /// <summary>Whether an export to <paramref name="path"/> held <paramref name="text"/> (protobuf keeps names as UTF-8).</summary>
    public bool Received(string path, string text) =>
        _received.Any(r => r.Path == path && r.Body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0);

    public void Dispose() => _server.Dispose();
}
