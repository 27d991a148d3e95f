using JasperFx.Events;
using Kraud.Domain.Common;
using Kraud.Domain.Network;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Network;

/// <summary>The control plane computed a new WireGuard peer set for the host (one event per change).</summary>
public sealed record HostPeerSetChanged(Guid HostId, string HostName, long Revision, IReadOnlyList<Peer> Peers, DateTimeOffset At);

/// <summary>The host runtime reported that it runs this revision.</summary>
public sealed record HostPeerSetApplied(Guid HostId, long Revision, DateTimeOffset At);

/// <summary>Per host, the peers it must know and which revision it has applied. The stream is the host's peer-set stream.</summary>
public sealed class PeerSetView
{
    public Guid Id { get; set; }
    public Guid HostId { get; set; }
    public string HostName { get; set; } = "";
    public long Revision { get; set; }
    public long AppliedRevision { get; set; }
    public DateTimeOffset ChangedAt { get; set; }
    public DateTimeOffset? AppliedAt { get; set; }
    public List<Peer> Peers { get; set; } = [];

    /// <summary>Peer sets live in a stream of their own per host, so mesh changes never contend with capacity appends.</summary>
    public static Guid StreamFor(Guid hostId) => DeterministicId.From("wireguard-peers", hostId);
}

public sealed class PeerSetViewProjection : SingleStreamProjection<PeerSetView, Guid>
{
    public override PeerSetView? Evolve(PeerSetView? snapshot, Guid id, IEvent e) => e.Data switch
    {
        HostPeerSetChanged c => new PeerSetView
        {
            Id = id, HostId = c.HostId, HostName = c.HostName, Revision = c.Revision, Peers = [.. c.Peers], ChangedAt = c.At,
            AppliedRevision = snapshot?.AppliedRevision ?? 0, AppliedAt = snapshot?.AppliedAt,
        },
        HostPeerSetApplied a when snapshot is not null && a.Revision > snapshot.AppliedRevision =>
            Copy(snapshot, s => { s.AppliedRevision = a.Revision; s.AppliedAt = a.At; }),
        _ => snapshot,
    };

    private static PeerSetView Copy(PeerSetView v, Action<PeerSetView> change)
    {
        var copy = new PeerSetView
        {
            Id = v.Id, HostId = v.HostId, HostName = v.HostName, Revision = v.Revision, AppliedRevision = v.AppliedRevision, ChangedAt = v.ChangedAt,
            AppliedAt = v.AppliedAt, Peers = v.Peers,
        };
        change(copy);
        return copy;
    }
}
