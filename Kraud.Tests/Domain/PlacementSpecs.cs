using System.Collections.Immutable;
using Kraud.Domain.Fleet;
using Kraud.Domain.Scheduling;

namespace Kraud.Tests.Domain;

public class PlacementSpecs
{
    private static Host Host(string name, string zone = "z1", int cpu = 8, int memory = 16384, bool sev = false, HostRole role = HostRole.Compute,
        HostState state = HostState.Ready, int cpuUsed = 0)
    {
        var vms = cpuUsed == 0
            ? ImmutableDictionary<Guid, HostVm>.Empty
            : ImmutableDictionary<Guid, HostVm>.Empty.Add(Guid.NewGuid(), new HostVm(Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), cpuUsed, 1024));
        return Kraud.Domain.Fleet.Host.Initial with
        {
            Id = Kraud.Domain.Fleet.Host.IdFor(name), Name = name, Zone = zone, Rack = "r1", Role = role, State = state, Cpu = cpu, MemoryMiB = memory,
            SevSnp = sev, Exists = true, Vms = vms,
        };
    }

    private static PlacementRequest Request(int replicas, int cpu = 2, int memory = 1024, string? zone = null, bool confidential = false) =>
        new(Guid.NewGuid(), Enumerable.Range(0, replicas).ToList(), cpu, memory, zone, confidential, []);

    [Fact]
    public void replicas_of_one_pod_land_on_distinct_hosts()
    {
        var placed = Assert.IsType<Placed>(Placement.Place(Request(3), [Host("a"), Host("b"), Host("c")]));
        Assert.Equal(3, placed.Hosts.Select(h => h.Host.Id).Distinct().Count());
    }

    [Fact]
    public void more_replicas_than_hosts_is_unschedulable_with_the_reason()
    {
        var result = Assert.IsType<Unschedulable>(Placement.Place(Request(3), [Host("a"), Host("b")]));
        Assert.Contains("replica 2", result.Reason);
        Assert.Contains("no other replica", result.Reason);
    }

    [Fact]
    public void hosts_already_running_a_replica_of_the_pod_are_skipped()
    {
        var a = Host("a");
        var request = Request(1) with { HostsInUse = [a.Id] };
        var placed = Assert.IsType<Placed>(Placement.Place(request, [a, Host("b")]));
        Assert.Equal("b", placed.Hosts.Single().Host.Name);
    }

    [Fact]
    public void cpu_is_never_over_committed()
    {
        var result = Placement.Place(Request(1, cpu: 4), [Host("a", cpu: 8, cpuUsed: 5)]);
        Assert.IsType<Unschedulable>(result);
        Assert.IsType<Placed>(Placement.Place(Request(1, cpu: 3), [Host("a", cpu: 8, cpuUsed: 5)]));
    }

    [Fact]
    public void memory_is_never_over_committed()
    {
        Assert.IsType<Unschedulable>(Placement.Place(Request(1, memory: 16385), [Host("a", memory: 16384)]));
    }

    [Fact]
    public void the_requested_zone_is_honoured()
    {
        var placed = Assert.IsType<Placed>(Placement.Place(Request(2, zone: "z2"), [Host("a"), Host("b", zone: "z2"), Host("c", zone: "z2"), Host("d")]));
        Assert.All(placed.Hosts, h => Assert.Equal("z2", h.Host.Zone));
        Assert.Contains("zone z9", Assert.IsType<Unschedulable>(Placement.Place(Request(1, zone: "z9"), [Host("a")])).Reason);
    }

    [Fact]
    public void confidential_pods_go_only_to_sev_snp_hosts()
    {
        var placed = Assert.IsType<Placed>(Placement.Place(Request(1, confidential: true), [Host("a"), Host("sev", sev: true), Host("b")]));
        Assert.Equal("sev", placed.Hosts.Single().Host.Name);
        Assert.Contains("SEV-SNP", Assert.IsType<Unschedulable>(Placement.Place(Request(1, confidential: true), [Host("a")])).Reason);
    }

    [Fact]
    public void ordinary_pods_use_sev_snp_hosts_only_when_nothing_else_fits()
    {
        Assert.Equal("a", Assert.IsType<Placed>(Placement.Place(Request(1), [Host("sev", sev: true, cpu: 64), Host("a")])).Hosts.Single().Host.Name);
        Assert.Equal("sev", Assert.IsType<Placed>(Placement.Place(Request(1, cpu: 16), [Host("sev", sev: true, cpu: 64), Host("a")])).Hosts.Single().Host.Name);
    }

    [Theory]
    [InlineData(HostState.Cordoned)]
    [InlineData(HostState.Draining)]
    [InlineData(HostState.Failed)]
    public void hosts_that_are_not_ready_get_nothing(HostState state) =>
        Assert.IsType<Unschedulable>(Placement.Place(Request(1), [Host("a", state: state)]));

    [Theory]
    [InlineData(HostRole.Storage)]
    [InlineData(HostRole.Ingress)]
    public void pods_run_on_compute_hosts_only(HostRole role) =>
        Assert.IsType<Unschedulable>(Placement.Place(Request(1), [Host("a", role: role)]));

    [Fact]
    public void load_spreads_to_the_emptiest_host()
    {
        var placed = Assert.IsType<Placed>(Placement.Place(Request(1), [Host("busy", cpuUsed: 6), Host("idle")]));
        Assert.Equal("idle", placed.Hosts.Single().Host.Name);
    }

    [Fact]
    public void the_same_fleet_and_request_give_the_same_placement()
    {
        var fleet = Enumerable.Range(0, 20).Select(i => Host($"h{i:00}", cpuUsed: i % 3)).ToList();
        var request = Request(5);
        var first = Assert.IsType<Placed>(Placement.Place(request, fleet)).Hosts.Select(h => h.Host.Name).ToList();
        var shuffled = fleet.OrderBy(h => h.Name.GetHashCode()).Reverse().ToList();
        Assert.Equal(first, Assert.IsType<Placed>(Placement.Place(request, shuffled)).Hosts.Select(h => h.Host.Name).ToList());
    }
}
