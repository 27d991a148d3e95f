using System.Collections.Immutable;

namespace Kraud.Domain.Network;

/// <summary>A microVM as the mesh sees it: which tenant's VPC it is in, on which host, with which addresses.</summary>
public sealed record MeshVm(Guid VmId, Guid TenantId, Guid HostId, string Ip6, string Ip4);

/// <summary>A host as the mesh sees it: only hosts that announced a public key can be peers.</summary>
public sealed record MeshHost(Guid HostId, string Name, string? PublicKey, string? Endpoint);

/// <summary>
/// An ingress host proxies to this microVM: the two hosts peer, the ingress host may send from its tunnel address (one
/// per ingress host, outside every VPC) and reaches exactly the microVM's addresses.
/// </summary>
public sealed record IngressLink(Guid IngressHostId, string TunnelAddress, Guid VmId);

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
    public static ImmutableDictionary<Guid, ImmutableArray<Peer>> PeerSets(IEnumerable<MeshVm> vms, IEnumerable<MeshHost> hosts,
        IEnumerable<IngressLink>? ingress = null)
    {
        var known = hosts.ToDictionary(h => h.HostId);
        var byHost = vms.Where(v => known.ContainsKey(v.HostId)).GroupBy(v => v.HostId).ToDictionary(g => g.Key, g => g.ToList());
        var hostsOfTenant = byHost
            .SelectMany(kv => kv.Value.Select(v => (v.TenantId, Host: kv.Key)))
            .GroupBy(x => x.TenantId)
            .ToDictionary(g => g.Key, g => g.Select(x => x.Host).Distinct().ToList());

        // host -> peer -> what that peer may send to it
        var allowed = known.Keys.ToDictionary(h => h, _ => new Dictionary<Guid, SortedSet<string>>());
        void Allow(Guid host, Guid peer, IEnumerable<string> ips)
        {
            if (host == peer || known[peer].PublicKey is null) return;
            if (!allowed[host].TryGetValue(peer, out var set)) allowed[host][peer] = set = new SortedSet<string>(StringComparer.Ordinal);
            set.UnionWith(ips);
        }
        foreach (var host in known.Values)
        {
            var tenants = byHost.TryGetValue(host.HostId, out var own) ? own.Select(v => v.TenantId).ToHashSet() : [];
            foreach (var other in tenants.SelectMany(t => hostsOfTenant[t]).Distinct())
                Allow(host.HostId, other, byHost[other].Where(v => tenants.Contains(v.TenantId)).SelectMany(Addresses));
        }
        var vmsById = byHost.Values.SelectMany(v => v).ToDictionary(v => v.VmId);
        foreach (var link in ingress ?? [])
        {
            if (!known.ContainsKey(link.IngressHostId) || !vmsById.TryGetValue(link.VmId, out var vm)) continue;
            Allow(link.IngressHostId, vm.HostId, Addresses(vm));
            Allow(vm.HostId, link.IngressHostId, [$"{link.TunnelAddress}/32"]);
        }

        var result = ImmutableDictionary.CreateBuilder<Guid, ImmutableArray<Peer>>();
        foreach (var host in known.Values)
            result[host.HostId] = allowed[host.HostId]
                .Select(kv => new Peer(kv.Key, known[kv.Key].Name, known[kv.Key].PublicKey!, known[kv.Key].Endpoint, [.. kv.Value]))
                .OrderBy(p => p.HostName, StringComparer.Ordinal)
                .ToImmutableArray();
        return result.ToImmutable();
    }

    private static string[] Addresses(MeshVm v) => [$"{v.Ip4}/32", $"{v.Ip6}/128"];

    public static bool SameSet(IReadOnlyList<Peer> a, IReadOnlyList<Peer> b) => a.Count == b.Count && a.Zip(b).All(x => x.First.SameAs(x.Second));
}
