using System.Collections.Immutable;

namespace Kraud.Domain.Network;

/// <summary>A microVM as the mesh sees it: which tenant's VPC it is in, on which host, with which addresses.</summary>
public sealed record MeshVm(Guid VmId, Guid TenantId, Guid HostId, string Ip6, string Ip4);

/// <summary>A host as the mesh sees it: only hosts that announced a public key can be peers.</summary>
public sealed record MeshHost(Guid HostId, string Name, string? PublicKey, string? Endpoint);

/// <summary>One peer of a host's WireGuard interface: the other host's key, where to reach it, and what it may send.</summary>
public sealed record Peer(Guid HostId, string HostName, string PublicKey, string? Endpoint, ImmutableArray<string> AllowedIps)
{
    public bool SameAs(Peer other) => HostId == other.HostId && PublicKey == other.PublicKey && Endpoint == other.Endpoint &&
                                      AllowedIps.SequenceEqual(other.AllowedIps);
}

/// <summary>
/// The WireGuard mesh of all tenant VPCs. A host must know every other host that runs a microVM of a tenant it runs
/// microVMs of, also in the same rack; the allowed IPs of such a peer are the addresses of exactly those of the peer's
/// microVMs whose tenant the two hosts share, so a host never accepts traffic for a VPC it has no part in.
/// </summary>
public static class Mesh
{
    public static ImmutableDictionary<Guid, ImmutableArray<Peer>> PeerSets(IEnumerable<MeshVm> vms, IEnumerable<MeshHost> hosts)
    {
        var known = hosts.ToDictionary(h => h.HostId);
        var byHost = vms.Where(v => known.ContainsKey(v.HostId)).GroupBy(v => v.HostId).ToDictionary(g => g.Key, g => g.ToList());
        var hostsOfTenant = byHost
            .SelectMany(kv => kv.Value.Select(v => (v.TenantId, Host: kv.Key)))
            .GroupBy(x => x.TenantId)
            .ToDictionary(g => g.Key, g => g.Select(x => x.Host).Distinct().ToList());

        var result = ImmutableDictionary.CreateBuilder<Guid, ImmutableArray<Peer>>();
        foreach (var host in known.Values)
        {
            var tenants = byHost.TryGetValue(host.HostId, out var own) ? own.Select(v => v.TenantId).ToHashSet() : [];
            var peers = tenants
                .SelectMany(t => hostsOfTenant[t])
                .Where(other => other != host.HostId && known[other].PublicKey is not null)
                .Distinct()
                .Select(other => Peer(known[other], byHost[other].Where(v => tenants.Contains(v.TenantId))))
                .OrderBy(p => p.HostName, StringComparer.Ordinal)
                .ToImmutableArray();
            result[host.HostId] = peers;
        }
        return result.ToImmutable();
    }

    private static Peer Peer(MeshHost host, IEnumerable<MeshVm> vms) => new(host.HostId, host.Name, host.PublicKey!, host.Endpoint,
        [.. vms.SelectMany(v => new[] { $"{v.Ip4}/32", $"{v.Ip6}/128" }).Order(StringComparer.Ordinal)]);

    public static bool SameSet(IReadOnlyList<Peer> a, IReadOnlyList<Peer> b) => a.Count == b.Count && a.Zip(b).All(x => x.First.SameAs(x.Second));
}
