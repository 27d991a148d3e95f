using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Network;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Network;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Network;

/// <summary>
/// Keeps the WireGuard mesh: after any change to where tenant microVMs run or to a host's key, computes every host's
/// peer set from the committed state, and for each host whose set differs appends HostPeerSetChanged (one event per
/// change) and sends the set to the host's queue (through the outbox: only if the event commits). Changes arrive in
/// batches on one sequential queue, so a burst (a failed host's pods moving) costs one computation, not hundreds.
/// </summary>
public static class MeshHandler
{
    public const string Queue = "mesh";
    private static readonly Principal Mesh = Principal.System("mesh");

    public static async Task Handle(MeshChanged[] batch, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        var hosts = await session.Query<HostView>().ToListAsync();
        var pods = await session.Query<PodView>().Where(p => p.State != PodState.Stopped).ToListAsync();
        var current = (await session.Query<PeerSetView>().ToListAsync()).ToDictionary(v => v.HostId);
        var sets = Domain.Network.Mesh.PeerSets(MeshVms(pods), MeshHosts(hosts));
        var now = time.GetUtcNow();
        var stamp = AuditStamp.For(context, Mesh, null, "ComputePeerSets");
        foreach (var host in hosts.OrderBy(h => h.Name))
        {
            var peers = sets[host.Id];
            var before = current.GetValueOrDefault(host.Id);
            if (before is not null ? Domain.Network.Mesh.SameSet(before.Peers, peers) : peers.IsEmpty) continue;
            var revision = (before?.Revision ?? 0) + 1;
            var change = new HostPeerSetChanged(host.Id, host.Name, revision, peers, now);
            session.Events.Append(PeerSetView.StreamFor(host.Id), change).Stamp(stamp);
            // A failed host gets its set when it is back (its queue keeps the command until then).
            await context.EndpointFor(HostQueues.Uri(host.Name)).SendAsync(new ApplyPeerSet(host.Id, revision,
                peers.Select(p => new WireGuardPeer(p.HostId, p.HostName, p.PublicKey, p.Endpoint, p.AllowedIps)).ToList()));
        }
    }

    /// <summary>Every microVM that holds VPC addresses: placed, booting, running or still stopping (failed ones gave theirs back).</summary>
    public static IEnumerable<MeshVm> MeshVms(IEnumerable<PodView> pods) => pods.SelectMany(p => p.Pod.Instances
        .Where(i => i is { Ip4: not null, Ip6: not null } && i.Phase != VmPhase.Failed)
        .Select(i => new MeshVm(i.VmId, p.TenantId, i.HostId, i.Ip6!, i.Ip4!)));

    public static IEnumerable<MeshHost> MeshHosts(IEnumerable<HostView> hosts) => hosts
        .Select(h => new MeshHost(h.Id, h.Name, h.State == HostState.Failed ? null : h.Host.WireGuardPublicKey, h.Host.WireGuardEndpoint));
}

/// <summary>A host runtime applied a revision of its peer set: recorded beside the set, for operators and the benchmark.</summary>
public static class PeerSetAppliedHandler
{
    public static async Task Handle(PeerSetApplied report, IDocumentSession session, TimeProvider time)
    {
        // Reports of one host can be handled at the same moment: the acknowledgement is versioned (optimistic concurrency),
        // so a late report of an older revision loses and, retried, sees the newer one and changes nothing.
        var ack = await session.LoadAsync<PeerSetAck>(report.HostId);
        if (ack is null)
        {
            session.Insert(new PeerSetAck { Id = report.HostId, Revision = report.Revision, At = time.GetUtcNow() });
            return;
        }
        if (report.Revision <= ack.Revision) return;
        ack.Revision = report.Revision;
        ack.At = time.GetUtcNow();
        session.Store(ack);
    }
}
