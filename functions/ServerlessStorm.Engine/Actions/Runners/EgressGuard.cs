using System.Net;
using System.Net.Sockets;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>Refused because the destination address is not allowed for outbound requests from actions.</summary>
public sealed class EgressRefusedException(string message) : HttpRequestException(message);

/// <summary>
/// Decides which addresses actions may connect to: by default none of loopback, private, link-local, shared and
/// metadata ranges (169.254.169.254 in every spelling, IPv4-mapped IPv6 included), unless a network is allowed by the
/// deployment (<c>Storm:AllowedNetworks</c>) or by the pack's configuration (<c>allowed_networks</c> in its
/// config.yaml). It runs after DNS resolution, on every connection (redirects included), so a name that resolves to a
/// refused address is refused like the address itself.
/// </summary>
public sealed class EgressGuard(IEnumerable<IPNetwork>? allowed = null)
{
    public static readonly IReadOnlyList<IPNetwork> Refused =
    [
        IPNetwork.Parse("127.0.0.0/8"),       // loopback
        IPNetwork.Parse("::1/128"),
        IPNetwork.Parse("10.0.0.0/8"),        // private
        IPNetwork.Parse("172.16.0.0/12"),
        IPNetwork.Parse("192.168.0.0/16"),
        IPNetwork.Parse("fc00::/7"),
        IPNetwork.Parse("169.254.0.0/16"),    // link-local, including the cloud metadata service 169.254.169.254
        IPNetwork.Parse("fe80::/10"),
        IPNetwork.Parse("100.64.0.0/10"),     // shared address space, including Alibaba Cloud's metadata 100.100.100.200
        IPNetwork.Parse("fd00:ec2::254/128"), // AWS IPv6 metadata
        IPNetwork.Parse("0.0.0.0/8"),
        IPNetwork.Parse("::/128"),
    ];

    private readonly IPNetwork[] _allowed = [.. allowed ?? []];

    /// <summary>A guard that also allows <paramref name="more"/>.</summary>
    public EgressGuard With(IEnumerable<IPNetwork> more) => new([.. _allowed, .. more]);

    public bool IsAllowed(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        return _allowed.Any(n => n.Contains(address)) || !Refused.Any(n => n.Contains(address));
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
            throw new EgressRefusedException($"outbound request to {host} ({refused}) refused: loopback, private, link-local and metadata addresses are blocked unless the deployment or the pack's allowed_networks allows them");
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
