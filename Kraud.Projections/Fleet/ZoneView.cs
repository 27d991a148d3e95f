using JasperFx.Events;
using Kraud.Domain.Fleet;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Fleet;

public sealed class ZoneView
{
    public Guid Id { get; set; }
    public string Name { get; set; } = "";
    public string Datacenter { get; set; } = "";
    public Zone Zone { get; set; } = Zone.Initial;
}

public sealed class ZoneViewProjection : SingleStreamProjection<ZoneView, Guid>
{
    public override ZoneView? Evolve(ZoneView? snapshot, Guid id, IEvent e)
    {
        var zone = (snapshot?.Zone ?? Zone.Initial).Evolve(e.Data);
        return zone.Exists ? new ZoneView { Id = zone.Id, Name = zone.Name, Datacenter = zone.Datacenter, Zone = zone } : snapshot;
    }
}
