using System.Net;
using System.Net.Sockets;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>Refused because the destination address is not allowed for outbound requests from actions.</summary>
public sealed class EgressRefusedException(string message) : HttpRequestException(message);

/// <summary>
/// Decides which addresses actions may connect to. It runs after DNS resolution, on every connection (redirects
/// included), so a name that resolves to a metadata address is refused like the address itself.
/// </summary>
public sealed class EgressGuard(IEnumerable<IPNetwork>? allowed = null)
{
    private static readonly IPNetwork[] AlwaysBlocked =
    [
        IPNetwork.Parse("169.254.0.0/16"),   // link-local, including the cloud metadata service 169.254.169.254
        IPNetwork.Parse("fe80::/10"),        // IPv6 link-local
        IPNetwork.Parse("fd00:ec2::254/128"), // AWS IPv6 metadata
        IPNetwork.Parse("100.100.100.200/32"), // Alibaba Cloud metadata
        IPNetwork.Parse("0.0.0.0/8"),
        IPNetwork.Parse("::/128"),
    ];

    private readonly IPNetwork[] _allowed = [.. allowed ?? []];

    public bool IsAllowed(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (_allowed.Any(n => n.Contains(address)))
        {
            return true;
        }

        return !AlwaysBlocked.Any(n => n.Contains(address));
    }

    /// <summary>A <see cref="SocketsHttpHandler.ConnectCallback"/> that resolves, checks every address, then connects.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken);
        var refused = addresses.FirstOrDefault(a => !IsAllowed(a));
        if (refused is not null)
        {
            throw new EgressRefusedException($"outbound request to {host} ({refused}) refused: link-local and metadata addresses are blocked");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, context.DnsEndPoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
