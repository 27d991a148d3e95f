using JasperFx.Events;
using Kraud.Domain.Tenants;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Tenants;

public sealed class TenantView
{
    public Guid Id { get; set; }
    public string Name { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
}

public sealed class TenantViewProjection : SingleStreamProjection<TenantView, Guid>
{
    public override TenantView? Evolve(TenantView? snapshot, Guid id, IEvent e) => e.Data switch
    {
        TenantCreated c => new TenantView { Id = c.TenantId, Name = c.Name, CreatedAt = c.At },
        _ => snapshot,
    };
}
