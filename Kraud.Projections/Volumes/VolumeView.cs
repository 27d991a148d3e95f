using JasperFx.Events;
using Kraud.Domain.Volumes;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Volumes;

/// <summary>The volume as the API shows it. Inline, like pods: visible in the transaction that created or changed it.</summary>
public sealed class VolumeView
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public string Name { get; set; } = "";
    public VolumeState State { get; set; }
    public int Version { get; set; }
    public long CreatedTicks { get; set; }

    /// <summary>Pods that mount it: the scheduler and pod boots look volumes up by pod.</summary>
    public List<Guid> AttachedTo { get; set; } = [];

    /// <summary>Storage hosts holding a replica: a storage host's failure finds its volumes by this.</summary>
    public List<Guid> ReplicaHosts { get; set; } = [];

    public Volume Volume { get; set; } = Volume.Initial;

    /// <summary>Since when the volume's bytes went uncompared (its last scrub, else its creation); long.MaxValue for a volume with
    /// no bytes on storage hosts. The scrub round picks volumes by this.</summary>
    public long ScrubFromTicks { get; set; }

    public static VolumeView From(Volume volume, int version) => new()
    {
        Id = volume.Id,
        TenantId = volume.TenantId,
        Name = volume.Name,
        State = volume.State,
        Version = version,
        CreatedTicks = volume.CreatedAt.UtcTicks,
        AttachedTo = volume.Attachments.Select(a => a.PodId).ToList(),
        ReplicaHosts = volume.Replicas.Select(r => r.HostId).ToList(),
        Volume = volume,
        ScrubFromTicks = volume.OnBlockExports ? (volume.LastScrubbedAt ?? volume.CreatedAt).UtcTicks : long.MaxValue,
    };
}

public sealed class VolumeViewProjection : SingleStreamProjection<VolumeView, Guid>
{
    public override VolumeView? Evolve(VolumeView? snapshot, Guid id, IEvent e)
    {
        var after = Snapshots.Evolve(snapshot?.Volume, e);
        return after.Exists ? VolumeView.From(after, (int)e.Version) : snapshot;
    }
}
