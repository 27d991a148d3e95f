using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Network;
using Microsoft.Extensions.Logging;

namespace Kraud.HostRuntime.Network;

/// <summary>
/// The tenants' DNS (RFC 1035 over UDP, A and AAAA) at port 53 of the host namespace, so every overlay's .1 gateway answers
/// its guests. Who asks decides what is seen: the source address names the tenant and namespace (overlays are unique
/// across tenants), and a name resolves through <see cref="ServiceDiscovery.Resolve"/> in that tenant's table only.
/// </summary>
public sealed class ServiceDiscoveryResolver : IDisposable
{
    private const int TtlSeconds = 5;
    private readonly Socket _socket;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private volatile ApplyServiceDiscovery? _table;

    private ServiceDiscoveryResolver(Socket socket, ILogger logger)
    {
        _socket = socket;
        _logger = logger;
    }

    public long Revision => _table?.Revision ?? 0;

    public static ServiceDiscoveryResolver Start(string namespaceName, ILogger logger)
    {
        var socket = Netns.Socket(namespaceName, AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
        socket.DualMode = true;
        socket.Bind(new IPEndPoint(IPAddress.IPv6Any, 53));
        var resolver = new ServiceDiscoveryResolver(socket, logger);
        _ = resolver.ServeAsync();
        return resolver;
    }

    /// <returns>false when the revision is not newer than the table in use.</returns>
    public bool Apply(ApplyServiceDiscovery table)
    {
        if (_table is { } current && current.Revision >= table.Revision) return false;
        _table = table;
        return true;
    }

    private async Task ServeAsync()
    {
        var buffer = new byte[1500];
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var received = await _socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.IPv6Any, 0), _stop.Token);
                var from = (IPEndPoint)received.RemoteEndPoint;
                var answer = Answer(buffer.AsSpan(0, received.ReceivedBytes), from.Address.IsIPv4MappedToIPv6 ? from.Address.MapToIPv4() : from.Address, _table);
                if (answer is not null) await _socket.SendToAsync(answer, from, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _logger.LogDebug("resolver: {Error}", e.Message);
            }
        }
    }

    /// <summary>The reply to one query, or null for something that is no query (dropped, as resolvers do).</summary>
    public static byte[]? Answer(ReadOnlySpan<byte> query, IPAddress from, ApplyServiceDiscovery? table)
    {
        if (query.Length < 12 || (query[2] & 0x80) != 0 || BinaryPrimitives.ReadUInt16BigEndian(query[4..]) != 1) return null;
        var name = new StringBuilder();
        var at = 12;
        while (true)
        {
            if (at >= query.Length) return null;
            int length = query[at++];
            if (length == 0) break;
            if (length > 63 || at + length > query.Length) return null;
            if (name.Length > 0) name.Append('.');
            name.Append(Encoding.ASCII.GetString(query.Slice(at, length)));
            at += length;
        }
        if (at + 4 > query.Length) return null;
        var type = BinaryPrimitives.ReadUInt16BigEndian(query[at..]);
        var questionEnd = at + 4;

        var record = Lookup(table, from, name.ToString());
        var addresses = record is null ? [] : (type switch { 1 => record.Ip4, 28 => record.Ip6, _ => [] })
            .Select(IPAddress.Parse).ToList();
        var reply = new List<byte>(questionEnd + addresses.Count * 28);
        reply.AddRange(query[..2].ToArray());
        // QR, the query's opcode and RD, authoritative; NXDOMAIN for a name the asker's tenant does not have.
        reply.Add((byte)(0x80 | (query[2] & 0x79) | 0x04));
        reply.Add((byte)(record is null ? 3 : 0));
        reply.AddRange([0, 1, (byte)(addresses.Count >> 8), (byte)addresses.Count, 0, 0, 0, 0]);
        reply.AddRange(query[12..questionEnd].ToArray());
        foreach (var address in addresses)
        {
            var bytes = address.GetAddressBytes();
            reply.AddRange([0xC0, 12, (byte)(type >> 8), (byte)type, 0, 1, 0, 0, 0, TtlSeconds, 0, (byte)bytes.Length]);
            reply.AddRange(bytes);
        }
        return [.. reply];
    }

    /// <summary>The asker's tenant and namespace come from its address; only that tenant's records are searched.</summary>
    private static DnsRecord? Lookup(ApplyServiceDiscovery? table, IPAddress from, string name)
    {
        if (table is null) return null;
        foreach (var tenant in table.Tenants)
            foreach (var ns in tenant.Namespaces)
                if (Contains(from.AddressFamily == AddressFamily.InterNetwork ? ns.Ipv4Cidr : ns.Ipv6Cidr, from))
                    return ServiceDiscovery.Resolve(tenant.Records, ns.Name, name);
        return null;
    }

    private static bool Contains(string cidr, IPAddress address)
    {
        var slash = cidr.IndexOf('/');
        var network = IPAddress.Parse(cidr[..slash]).GetAddressBytes();
        var bits = int.Parse(cidr[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        var candidate = address.GetAddressBytes();
        if (candidate.Length != network.Length) return false;
        for (var i = 0; i < bits; i++)
        {
            var mask = 0x80 >> (i % 8);
            if ((network[i / 8] & mask) != (candidate[i / 8] & mask)) return false;
        }
        return true;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _socket.Dispose();
        _stop.Dispose();
    }
}
