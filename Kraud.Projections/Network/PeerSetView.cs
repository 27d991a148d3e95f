using JasperFx.Events;
using Kraud.Domain.Common;
using Kraud.Domain.Network;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Network;

/// <summary>The control plane computed a new WireGuard peer set for the host (one event per change).</summary>
public sealed record HostPeerSetChanged(Guid HostId, string HostName, long Revision, IReadOnlyList<Peer> Peers, DateTimeOffset At);

/// <summary>
/// The revision a host runtime last reported as applied. A document, not an event on the peer-set stream: reports
/// arrive while the mesh appends the next change, and two writers on one stream would keep conflicting.
/// </summary>
public sealed class PeerSetAck
{
    public Guid Id { get; set; }
    public long Revision { get; set; }
    public DateTimeOffset At { get; set; }
}

/// <summary>Per host, the peers it must know. The stream is the host's peer-set stream.</summary>
public sealed class PeerSetView
{
    public Guid Id { get; set; }
    public Guid HostId { get; set; }
    public string HostName { get; set; } = "";
    public long Revision { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
    public List<Peer> Peers { get; set; } = [];

    /// <summary>Peer sets live in a stream of their own per host, so mesh changes never contend with capacity appends.</summary>
    public static Guid StreamFor(Guid hostId) => DeterministicId.From("wireguard-peers", hostId);
}

public sealed class PeerSetViewProjection : SingleStreamProjection<PeerSetView, Guid>
{
    public override PeerSetView? Evolve(PeerSetView? snapshot, Guid id, IEvent e) => e.Data switch
    {
        HostPeerSetChanged c => new PeerSetView { Id = id, HostId = c.HostId, HostName = c.HostName, Revision = c.Revision, Peers = [.. c.Peers], ChangedAt = c.At },
        _ => snapshot,
    };
}
