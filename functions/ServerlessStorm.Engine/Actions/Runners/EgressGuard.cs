using System.Net;
using System.Net.Sockets;

namespace ServerlessStorm.Engine.Actions.Runners;

/// <summary>Refused because the destination address is not allowed for outbound requests from actions.</summary>
public sealed class EgressRefusedException(string message) : HttpRequestException(message);

/// <summary>
/// Decides which addresses actions may connect to: by default none of loopback, private, link-local, shared,
/// multicast, reserved and metadata ranges (169.254.169.254 in every spelling, and an IPv4 address carried inside an
/// IPv6 one: mapped, compatible, NAT64, 6to4, Teredo), unless a network is allowed by the deployment
/// (<c>Storm:AllowedNetworks</c>) or by the pack's configuration (<c>allowed_networks</c> in its config.yaml). It
/// runs after DNS resolution, on every connection (redirects included), and the connection goes to the very
/// addresses it checked, so a name that resolves to a refused address is refused like the address itself.
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
        IPNetwork.Parse("0.0.0.0/8"),         // "this network"
        IPNetwork.Parse("::/128"),
        IPNetwork.Parse("192.0.0.0/24"),      // IETF protocol assignments (Oracle Cloud's metadata 192.0.0.192)
        IPNetwork.Parse("198.18.0.0/15"),     // benchmarking
        IPNetwork.Parse("224.0.0.0/4"),       // multicast
        IPNetwork.Parse("ff00::/8"),
        IPNetwork.Parse("240.0.0.0/4"),       // reserved, including broadcast 255.255.255.255
        IPNetwork.Parse("fec0::/10"),         // site-local (deprecated, still routed inside some networks)
        IPNetwork.Parse("64:ff9b:1::/48"),    // local-use NAT64: its embedding is the network's own choice
        IPNetwork.Parse("100::/64"),          // discard
    ];

    private static readonly IPNetwork Nat64 = IPNetwork.Parse("64:ff9b::/96");
    private static readonly IPNetwork SixToFour = IPNetwork.Parse("2002::/16");
    private static readonly IPNetwork Teredo = IPNetwork.Parse("2001::/32");
    private static readonly IPNetwork Compatible = IPNetwork.Parse("::/96");

    private readonly IPNetwork[] _allowed = [.. allowed ?? []];

    /// <summary>A guard that also allows <paramref name="more"/>.</summary>
    public EgressGuard With(IEnumerable<IPNetwork> more) => new([.. _allowed, .. more]);

    public bool IsAllowed(IPAddress address) =>
        Reaches(address).All(a => _allowed.Any(n => n.Contains(a)) || !Refused.Any(n => n.Contains(a)));

    // The address and every IPv4 address an IPv6 one carries to be reached through (a translator or tunnel that
    // delivers 64:ff9b::a9fe:a9fe reaches 169.254.169.254).
    private static IEnumerable<IPAddress> Reaches(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            yield return address;
            yield break;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            yield return address.MapToIPv4();
            yield break;
        }

        yield return address;
        var bytes = address.GetAddressBytes();
        if (Nat64.Contains(address) || (Compatible.Contains(address) && !address.Equals(IPAddress.IPv6Any) && !address.Equals(IPAddress.IPv6Loopback)))
        {
            yield return new IPAddress(bytes.AsSpan(12, 4));
        }
        else if (SixToFour.Contains(address))
        {
            yield return new IPAddress(bytes.AsSpan(2, 4));
        }
        else if (Teredo.Contains(address))
        {
            yield return new IPAddress(bytes.AsSpan(4, 4)); // the Teredo server
            var client = bytes[12..16];
            for (var i = 0; i < client.Length; i++)
            {
                client[i] ^= 0xff; // the client's address is stored inverted
            }

            yield return new IPAddress(client);
        }
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
