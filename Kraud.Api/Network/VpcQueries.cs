using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.Network;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Network;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Network;

public sealed record VpcPeerDto(Guid HostId, string PublicKey, string? Endpoint, IReadOnlyList<string> AllowedIps);

public sealed record VpcNamespaceDto(string Name, string Ipv4Cidr, string Ipv6Cidr);

public sealed record DnsRecordDto(string Name, string Namespace, string QualifiedName, IReadOnlyList<string> Ip4, IReadOnlyList<string> Ip6);

public sealed record VpcDto(Guid Id, Guid TenantId, string Ipv6Prefix, string? Ipv4Overlay, string Encryption, IReadOnlyList<VpcPeerDto> Peers,
    IReadOnlyList<VpcNamespaceDto> Namespaces, IReadOnlyList<DnsRecordDto> Dns);

public sealed record PeerSetDto(Guid HostId, long Revision, long AppliedRevision, DateTime ChangedAt, DateTime? AppliedAt, IReadOnlyList<VpcPeerDto> Peers);

/// <summary>
/// vpcs, Tenant.vpc and wireguardPeers. A tenant sees its own VPC, whose peer table lists the hosts that run its
/// microVMs with their public keys and the addresses of its microVMs there; operators see every VPC and each host's
/// peer set. Private keys never reach the control plane, so no answer can hold one.
/// </summary>
public static class VpcQueries
{
    public static void Map(Fields fields)
    {
        fields.Query("vpcs", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (principal.Role == Role.Auditor) throw DomainException.Forbidden("AUDITOR tokens read audit data only.");
            var query = ctx.Service<IQuerySession>().Query<VpcView>().AsQueryable();
            if (principal.TenantId is { } tenant) query = query.Where(v => v.TenantId == tenant);
            else if (principal.Role != Role.Operator) return [];
            var views = await query.ToListAsync(ctx.CancellationToken);
            var result = new List<VpcDto>();
            foreach (var view in views.OrderBy(v => v.TenantId)) result.Add(await ToDtoAsync(ctx.Service<IQuerySession>(), view.Vpc, ctx.CancellationToken));
            return result;
        });
        fields.On("Tenant", "vpc", async ctx =>
        {
            var tenant = (TenantDto)ctx.Source!;
            var session = ctx.Service<IQuerySession>();
            var view = await session.LoadAsync<VpcView>(Vpc.IdFor(tenant.Id), ctx.CancellationToken);
            return view is null ? null : await ToDtoAsync(session, view.Vpc, ctx.CancellationToken);
        });
        fields.Query("wireguardPeers", async ctx =>
        {
            if (ctx.Caller().Principal.Role != Role.Operator) throw DomainException.Forbidden("Peer sets of hosts are visible to operators only.");
            var hostId = Ids.Parse(ctx.GetArgument<string>("hostId"), "Host");
            var session = ctx.Service<IQuerySession>();
            var view = await session.LoadAsync<PeerSetView>(PeerSetView.StreamFor(hostId), ctx.CancellationToken);
            var ack = await session.LoadAsync<PeerSetAck>(hostId, ctx.CancellationToken);
            return view is null
                ? null
                : new PeerSetDto(view.HostId, view.Revision, ack?.Revision ?? 0, view.ChangedAt.UtcDateTime, ack?.At.UtcDateTime,
                    view.Peers.Select(p => new VpcPeerDto(p.HostId, p.PublicKey, p.Endpoint, p.AllowedIps)).ToList());
        });
    }

    public static async Task<VpcDto> ToDtoAsync(IQuerySession session, Vpc vpc, CancellationToken ct)
    {
        var pods = await session.Query<PodView>().Where(p => p.TenantId == vpc.TenantId && p.State != PodState.Stopped).ToListAsync(ct);
        var vms = MeshHandler.MeshVms(pods).ToList();
        var hostIds = vms.Select(v => v.HostId).Distinct().ToArray();
        var hosts = hostIds.Length == 0 ? [] : (await session.LoadManyAsync<HostView>(ct, hostIds)).Select(h => h.Host).ToList();
        var peers = hosts
            .Where(h => h.WireGuardPublicKey is not null && h.State != HostState.Failed)
            .OrderBy(h => h.Name, StringComparer.Ordinal)
            .Select(h => new VpcPeerDto(h.Id, h.WireGuardPublicKey!, h.WireGuardEndpoint,
                vms.Where(v => v.HostId == h.Id).SelectMany(v => new[] { $"{v.Ip4}/32", $"{v.Ip6}/128" }).Order(StringComparer.Ordinal).ToList()))
            .ToList();
        var overlay = vpc.Namespaces.GetValueOrDefault("default") ?? vpc.Namespaces.Values.FirstOrDefault();
        return new VpcDto(vpc.Id, vpc.TenantId, vpc.Ipv6Prefix, overlay?.Ipv4Cidr, Vpc.Encryption, peers,
            vpc.Namespaces.Values.Select(n => new VpcNamespaceDto(n.Name, n.Ipv4Cidr, n.Ipv6Cidr)).ToList(),
            DnsTable(pods.Select(p => p.Pod)).Select(r => new DnsRecordDto(r.Name, r.Namespace, r.Qualified, r.Ip4, r.Ip6)).ToList());
    }

    /// <summary>One record per pod with the addresses of its microVMs that are up (a name with no running replica resolves to nothing).</summary>
    public static IReadOnlyList<DnsRecord> DnsTable(IEnumerable<Pod> pods) => pods
        .Where(p => p.Exists && !p.Deleting)
        .Select(p => (pod: p, up: p.Live.Where(i => i.Phase == VmPhase.Running && i.Ip4 is not null).OrderBy(i => i.Replica).ToList()))
        .Where(x => x.up.Count > 0)
        .Select(x => new DnsRecord(x.pod.Spec.Name, x.pod.Spec.Namespace, x.up.Select(i => i.Ip4!).ToList(), x.up.Select(i => i.Ip6!).ToList()))
        .OrderBy(r => r.Namespace, StringComparer.Ordinal).ThenBy(r => r.Name, StringComparer.Ordinal)
        .ToList();
}
