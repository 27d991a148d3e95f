using JasperFx.Events;
using Kraud.Domain.Network;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Network;

/// <summary>A tenant's VPC: its prefixes and namespace overlays. Inline: the scheduler leases addresses from it at once.</summary>
public sealed class VpcView
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public Vpc Vpc { get; set; } = Vpc.Initial;
}

public sealed class VpcViewProjection : SingleStreamProjection<VpcView, Guid>
{
    public override VpcView? Evolve(VpcView? snapshot, Guid id, IEvent e)
    {
        var vpc = Snapshots.Evolve(snapshot?.Vpc, e);
        return vpc.Exists ? new VpcView { Id = vpc.Id, TenantId = vpc.TenantId, Vpc = vpc } : snapshot;
    }
}
