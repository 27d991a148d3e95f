using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Kraud.Domain.Network;

/// <summary>
/// Address plans of tenant VPCs. Each tenant has an IPv6 ULA /48 (RFC 4193: fd00::/8 and a 40-bit global id); each of
/// its namespaces a /64 of it and an IPv4 /23 of 10.0.0.0/8. A microVM's IPv6 address repeats its IPv4 host offset, so
/// one lease (the IPv4 offset) makes both addresses unique. IPv4 ranges are unique across tenants as well: hosts carry
/// every tenant's traffic on one WireGuard interface, where allowed IPs must not overlap.
/// </summary>
public static class Ipam
{
    /// <summary>/23 blocks of 10.0.0.0/8.</summary>
    public const int Ipv4Blocks = 1 << 15;

    public const int FirstHostOffset = 2;   // .0 is the network, .1 the namespace's gateway and resolver
    public const int LastHostOffset = 510;  // .511 of the /23 is the broadcast address

    public static int HostOffsets => LastHostOffset - FirstHostOffset + 1;

    /// <summary>The candidate 40-bit global id of a tenant's ULA prefix; attempt counts up when a candidate is taken.</summary>
    public static string Ipv6PrefixFor(Guid tenantId, int attempt)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"ula\u001f{tenantId}\u001f{attempt}"));
        var bytes = new byte[16];
        bytes[0] = 0xfd;
        Array.Copy(hash, 0, bytes, 1, 5);
        return new IPAddress(bytes) + "/48";
    }

    /// <summary>Where the search for a free /23 of a namespace starts: spread by hash, so tenants rarely probe the same blocks.</summary>
    public static int Ipv4BlockStart(Guid tenantId, string ns) =>
        (int)(BitConverter.ToUInt32(SHA256.HashData(Encoding.UTF8.GetBytes($"v4\u001f{tenantId}\u001f{ns}")), 0) % Ipv4Blocks);

    public static string Ipv4Block(int index)
    {
        if (index is < 0 or >= Ipv4Blocks) throw new ArgumentOutOfRangeException(nameof(index));
        return $"{Ipv4Address(index, 0)}/23";
    }

    public static string Ipv4Address(int block, int offset)
    {
        var value = (10u << 24) | ((uint)block << 9) | (uint)offset;
        return $"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}";
    }

    /// <summary>The index of a /23 given as "10.x.y.0/23".</summary>
    public static int Ipv4BlockIndex(string cidr)
    {
        var address = IPAddress.Parse(cidr.Split('/')[0]).GetAddressBytes();
        return ((address[1] << 16) | (address[2] << 8) | address[3]) >> 9;
    }

    /// <summary>The /64 of namespace number <paramref name="subnet"/> (1-based) in the tenant's /48.</summary>
    public static string Ipv6Subnet(string prefix48, int subnet) => $"{Ipv6Address(prefix48, subnet, 0)}/64";

    public static string Ipv6Address(string prefix48, int subnet, int offset)
    {
        var bytes = IPAddress.Parse(prefix48.Split('/')[0]).GetAddressBytes();
        bytes[6] = (byte)(subnet >> 8);
        bytes[7] = (byte)subnet;
        bytes[14] = (byte)(offset >> 8);
        bytes[15] = (byte)offset;
        return new IPAddress(bytes).ToString();
    }

    /// <summary>The lowest host offset not in use, or null when the namespace's /23 is full.</summary>
    public static int? FreeOffset(IReadOnlySet<int> taken)
    {
        for (var offset = FirstHostOffset; offset <= LastHostOffset; offset++)
            if (!taken.Contains(offset)) return offset;
        return null;
    }

    /// <summary>The gateway (and resolver) of the /23 an IPv4 microVM address lies in: host offset 1 of its block.</summary>
    public static string Ipv4Gateway(string ip4)
    {
        var bytes = IPAddress.Parse(ip4).GetAddressBytes();
        var value = ((uint)bytes[0] << 24) | ((uint)bytes[1] << 16) | ((uint)bytes[2] << 8) | bytes[3];
        value = (value & ~0x1FFu) | 1;
        return $"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}";
    }

    /// <summary>The gateway of the /64 an IPv6 microVM address lies in: interface id ::1.</summary>
    public static string Ipv6Gateway(string ip6)
    {
        var bytes = IPAddress.Parse(ip6).GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        bytes[15] = 1;
        return new IPAddress(bytes).ToString();
    }
}
