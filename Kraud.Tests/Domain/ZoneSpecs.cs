using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;

namespace Kraud.Tests.Domain;

public class ZoneSpecs
{
    private static RegisterHost Host(string zone, string rack, string datacenter = "FSN1-DC2") =>
        new(Guid.NewGuid(), "h1", zone, datacenter, rack, HostRole.Compute, 8, 16384, 100, false, Principal.System("test"), DateTimeOffset.UnixEpoch);

    [Fact]
    public void the_first_host_of_a_zone_registers_the_zone_in_its_datacenter_with_its_rack()
    {
        var events = ZoneDecider.ForHost(Host("z1", "r1"), Zone.Initial);
        var zone = Fold.Events<Zone>(events);
        Assert.Equal("FSN1-DC2", zone.Datacenter);
        Assert.Equal(["r1"], zone.Racks);
        Assert.Equal(Zone.IdFor("z1"), zone.Id);
    }

    [Fact]
    public void a_new_rack_is_added_once()
    {
        var zone = Fold.Events<Zone>(ZoneDecider.ForHost(Host("z1", "r1"), Zone.Initial));
        var added = ZoneDecider.ForHost(Host("z1", "r2"), zone);
        Assert.IsType<RackAdded>(Assert.Single(added));
        zone = added.Aggregate(zone, (z, e) => z.Evolve(e));
        Assert.Empty(ZoneDecider.ForHost(Host("z1", "r2"), zone));
        Assert.Equal(["r1", "r2"], zone.Racks);
    }

    [Fact]
    public void a_zone_stands_in_one_datacenter()
    {
        var zone = Fold.Events<Zone>(ZoneDecider.ForHost(Host("z1", "r1"), Zone.Initial));
        var error = Assert.Throws<DomainException>(() => ZoneDecider.ForHost(Host("z1", "r1", "NBG1-DC3"), zone));
        Assert.Equal(ErrorCode.Validation, error.Code);
        Assert.Contains("FSN1-DC2", error.Message);
    }
}
