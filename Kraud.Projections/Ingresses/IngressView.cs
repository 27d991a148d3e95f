using JasperFx.Events;
using Kraud.Domain.Ingresses;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Ingresses;

/// <summary>An ingress as the API shows it. Inline: placement reads every ingress's replicas right after a create.</summary>
public sealed class IngressView
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public string Name { get; set; } = "";
    public bool Deleted { get; set; }
    public int Version { get; set; }
    public Ingress Ingress { get; set; } = Ingress.Initial;
}

public sealed class IngressViewProjection : SingleStreamProjection<IngressView, Guid>
{
    public override IngressView? Evolve(IngressView? snapshot, Guid id, IEvent e)
    {
        var ingress = Snapshots.Evolve(snapshot?.Ingress, e);
        return ingress.Exists
            ? new IngressView { Id = ingress.Id, TenantId = ingress.TenantId, Name = ingress.Name, Deleted = ingress.Deleted, Version = (int)e.Version, Ingress = ingress }
            : snapshot;
    }
}
