using System.Collections.Immutable;
using Kraud.Domain.Common;

namespace Kraud.Domain.Fleet;

/// <summary>A zone came into the fleet with its first host: it stands in one datacenter.</summary>
public sealed record ZoneRegistered(Guid ZoneId, string Name, string Datacenter, DateTimeOffset At);

public sealed record RackAdded(Guid ZoneId, string Rack, DateTimeOffset At);

public sealed record Zone(Guid Id, string Name, string Datacenter, ImmutableSortedSet<string> Racks, bool Exists) : IState<Zone>
{
    public static Zone Initial { get; } = new(Guid.Empty, "", "", ImmutableSortedSet<string>.Empty, false);

    public static Guid IdFor(string name) => DeterministicId.From("zone", name);

    public Zone Evolve(object @event) => @event switch
    {
        ZoneRegistered e => new Zone(e.ZoneId, e.Name, e.Datacenter, ImmutableSortedSet<string>.Empty, true),
        RackAdded e => this with { Racks = Racks.Add(e.Rack) },
        _ => this,
    };
}

public static class ZoneDecider
{
    /// <summary>What registering a host in (zone, rack, datacenter) adds to the zone: nothing, a rack, or the zone itself.</summary>
    public static IReadOnlyList<object> ForHost(RegisterHost host, Zone zone)
    {
        var id = Zone.IdFor(host.Zone);
        if (!zone.Exists) return [new ZoneRegistered(id, host.Zone, host.Datacenter, host.At), new RackAdded(id, host.Rack, host.At)];
        if (zone.Datacenter != host.Datacenter)
            throw DomainException.Validation($"Zone {zone.Name} is in datacenter {zone.Datacenter}, not {host.Datacenter}.");
        return zone.Racks.Contains(host.Rack) ? [] : [new RackAdded(id, host.Rack, host.At)];
    }
}
