using System.Collections.Immutable;
using Kraud.Domain.Fleet;
using Kraud.Domain.Scheduling;

namespace Kraud.Tests.Domain;

public class PlacementSpecs
{
    private static Host Host(string name, string zone = "z1", int cpu = 8, int memory = 16384, bool sev = false, HostRole role = HostRole.Compute,
        HostState state = HostState.Ready, int cpuUsed = 0)
    {
        var host = Kraud.Domain.Fleet.Host.Initial with
        {
            Id = Kraud.Domain.Fleet.Host.IdFor(name),
            Name = name,
            Zone = zone,
            Rack = "r1",
            Role = role,
            State = state,
            Cpu = cpu,
            MemoryMiB = memory,
            SevSnp = sev,
            Exists = true,
            Vms = ImmutableDictionary<Guid, HostVm>.Empty,
        };
        return cpuUsed == 0 ? host : WithVms(host, 1, cpuUsed);
    }

    /// <summary>Adds <paramref name="count"/> microVMs of one shape, as if other pods ran there.</summary>
    private static Host WithVms(Host host, int count, int cpu, int memory = 1024) => host with
    {
        Vms = host.Vms.AddRange(Enumerable.Range(0, count).Select(_ =>
        {
            var id = Guid.NewGuid();
            return KeyValuePair.Create(id, new HostVm(id, Guid.NewGuid(), Guid.NewGuid(), cpu, memory));
        })),
    };

    private static List<Host> Hosts(int count, string prefix = "h", string zone = "z1", int cpu = 8, int memory = 16384, int cpuUsed = 0) =>
        Enumerable.Range(1, count).Select(i => Host($"{prefix}{i}", zone, cpu, memory, cpuUsed: cpuUsed)).ToList();

    private static PlacementRequest Request(int replicas, int cpu = 2, int memory = 1024, string? zone = null, bool confidential = false) =>
        new(Guid.NewGuid(), Enumerable.Range(0, replicas).ToList(), cpu, memory, zone, confidential, []);

    private static List<string> Names(PlacementResult result) => Assert.IsType<Placed>(result).Hosts.Select(h => h.Host.Name).ToList();

    private static string Reason(PlacementResult result) => Assert.IsType<Unschedulable>(result).Reason;

    [Fact]
    public void replicas_of_one_pod_land_on_distinct_hosts()
    {
        // The big host stays the emptiest after one replica, so only the distinct-hosts rule sends the others elsewhere.
        var placed = Names(Placement.Place(Request(3), [Host("a", cpu: 64), .. Hosts(4, "s")]));
        Assert.Equal(["a", "s1", "s2"], placed);
    }

    [Fact]
    public void more_replicas_than_hosts_is_unschedulable_with_the_reason()
    {
        var reason = Reason(Placement.Place(Request(5), Hosts(4)));
        Assert.Equal("N+2: a pod of 5 replicas needs at least 7 READY compute hosts in its zone, so that its replicas stay on distinct hosts " +
                     "after any two hosts fail; zone z1 has 4.", reason);
    }

    [Fact]
    public void a_replica_no_host_with_room_can_take_is_unschedulable_naming_the_replica()
    {
        var fleet = new[] { "a", "b", "c" }.Select(n => WithVms(Host(n), 3, 2)).Concat(Hosts(3, "d", cpu: 16)).ToList();
        var reason = Reason(Placement.Place(Request(4, cpu: 4), fleet));
        Assert.Equal("No host fits replica 3: it needs 4 cpu and 1024 MiB free on a READY compute host in zone z1 that runs no other replica " +
                     "of this pod; 6 such hosts exist, 3 already run one.", reason);
    }

    [Fact]
    public void hosts_already_running_a_replica_of_the_pod_are_skipped()
    {
        var a = Host("a");
        var request = Request(1) with { HostsInUse = [a.Id] };
        Assert.Equal(["b"], Names(Placement.Place(request, [a, Host("b", cpuUsed: 1), Host("c", cpuUsed: 2), Host("d", cpuUsed: 2)])));
    }

    [Fact]
    public void cpu_is_never_over_committed()
    {
        var fleet = Hosts(5, cpu: 16, cpuUsed: 5);
        Assert.StartsWith("No host fits replica 0: it needs 12 cpu", Reason(Placement.Place(Request(1, cpu: 12), fleet)));
        Assert.Equal(["h1"], Names(Placement.Place(Request(1, cpu: 11), fleet)));
    }

    [Fact]
    public void memory_is_never_over_committed()
    {
        var fleet = Hosts(5, memory: 16384);
        Assert.StartsWith("No host fits replica 0: it needs 2 cpu and 16385 MiB", Reason(Placement.Place(Request(1, memory: 16385), fleet)));
        Assert.Equal(["h1"], Names(Placement.Place(Request(1, memory: 16384), fleet)));
    }

    [Fact]
    public void the_requested_zone_is_honoured()
    {
        // z1 has far more free cpu, so only the request sends the pod to z2.
        List<Host> fleet = [.. Hosts(4, "a", "z1", cpu: 64), .. Hosts(4, "b", "z2")];
        Assert.Equal(["b1", "b2"], Names(Placement.Place(Request(2, zone: "z2"), fleet)));
        Assert.Equal("No READY compute host in zone z9.", Reason(Placement.Place(Request(1, zone: "z9"), fleet)));
    }

    [Fact]
    public void confidential_pods_go_only_to_sev_snp_hosts()
    {
        var placed = Names(Placement.Place(Request(1, confidential: true), [Host("a", cpu: 64), Host("sev", sev: true), Host("b", cpu: 64)]));
        Assert.Equal(["sev"], placed);
        Assert.Contains("SEV-SNP", Reason(Placement.Place(Request(1, confidential: true), Hosts(5))));
    }

    [Fact]
    public void ordinary_pods_use_sev_snp_hosts_only_when_nothing_else_fits()
    {
        // Three SEV-SNP hosts, so that a 16-cpu replica on one of them could still move to another after two failures.
        List<Host> fleet = [Host("sev1", sev: true, cpu: 64), Host("sev2", sev: true, cpu: 64), Host("sev3", sev: true, cpu: 64), .. Hosts(3, "a")];
        Assert.Equal(["a1"], Names(Placement.Place(Request(1), fleet)));
        Assert.Equal(["sev1"], Names(Placement.Place(Request(1, cpu: 16), fleet)));
    }

    [Theory]
    [InlineData(HostState.Cordoned)]
    [InlineData(HostState.Draining)]
    [InlineData(HostState.Failed)]
    public void hosts_that_are_not_ready_get_nothing(HostState state)
    {
        // The host that is not ready is the emptiest, and it does not count for N+2 either.
        Assert.Equal(["b"], Names(Placement.Place(Request(1), [Host("a", cpu: 64, state: state), Host("b"), Host("c"), Host("d")])));
        Assert.Contains("zone z1 has only 2 READY compute hosts", Reason(Placement.Place(Request(1), [Host("a", cpu: 64, state: state), Host("b"), Host("c")])));
    }

    [Theory]
    [InlineData(HostRole.Storage)]
    [InlineData(HostRole.Ingress)]
    public void pods_run_on_compute_hosts_only(HostRole role)
    {
        Assert.Equal(["b"], Names(Placement.Place(Request(1), [Host("a", cpu: 64, role: role), Host("b"), Host("c"), Host("d")])));
        Assert.Contains("zone z1 has only 2 READY compute hosts", Reason(Placement.Place(Request(1), [Host("a", cpu: 64, role: role), Host("b"), Host("c")])));
    }

    [Fact]
    public void load_spreads_to_the_emptiest_host()
    {
        var fleet = new[] { Host("busy", cpu: 16, cpuUsed: 6), Host("half", cpu: 16, cpuUsed: 4), Host("idle", cpu: 16), Host("quiet", cpu: 16, cpuUsed: 2) };
        Assert.Equal(["idle", "quiet"], Names(Placement.Place(Request(2), fleet)));
    }

    [Fact]
    public void the_same_fleet_and_request_give_the_same_placement()
    {
        var fleet = Enumerable.Range(0, 20).Select(i => Host($"h{i:00}", cpuUsed: i % 3)).ToList();
        var request = Request(5);
        var first = Names(Placement.Place(request, fleet));
        Assert.Equal(["h00", "h03", "h06", "h09", "h12"], first);
        var random = new Random(20);
        for (var i = 0; i < 10; i++)
            Assert.Equal(first, Names(Placement.Place(request, fleet.OrderBy(_ => random.Next()).ToList())));
    }

    [Fact]
    public void all_replicas_of_a_pod_land_in_one_zone_with_or_without_a_requested_zone()
    {
        // Names interleave the zones: picking the emptiest hosts fleet-wide would mix them.
        var fleet = Enumerable.Range(1, 10).Select(i => Host($"h{i:00}", i % 2 == 1 ? "fsn1-a" : "fsn1-b")).ToList();
        Assert.Equal(["h01", "h03", "h05"], Names(Placement.Place(Request(3), fleet)));
        Assert.Equal(["h02", "h04", "h06"], Names(Placement.Place(Request(3, zone: "fsn1-b"), fleet)));
    }

    [Fact]
    public void without_a_requested_zone_the_zone_with_the_most_free_cpu_is_chosen()
    {
        // fsn1-a has more hosts and the first name, fsn1-b more free cpu (64 against 48).
        List<Host> fleet = [.. Hosts(6, "a", "fsn1-a"), .. Hosts(4, "b", "fsn1-b", cpu: 16)];
        Assert.Equal(["b1"], Names(Placement.Place(Request(1), fleet)));

        // Free cpu, not capacity, decides: with 5 cpu used on each of its hosts fsn1-b has 44 free.
        List<Host> busier = [.. Hosts(6, "a", "fsn1-a"), .. Hosts(4, "b", "fsn1-b", cpu: 16, cpuUsed: 5)];
        Assert.Equal(["a1"], Names(Placement.Place(Request(1), busier)));
    }

    [Fact]
    public void zones_with_equal_free_cpu_are_chosen_by_name()
    {
        List<Host> fleet = [.. Hosts(4, "b", "fsn1-b"), .. Hosts(4, "a", "fsn1-a")];
        Assert.Equal(["a1"], Names(Placement.Place(Request(1), fleet)));
    }

    [Fact]
    public void a_zone_that_cannot_take_the_pod_is_passed_over_for_the_next_one()
    {
        // fsn1-a has the most free cpu but only two hosts.
        List<Host> fleet = [.. Hosts(2, "a", "fsn1-a", cpu: 64), .. Hosts(3, "b", "fsn1-b")];
        Assert.Equal(["b1"], Names(Placement.Place(Request(1), fleet)));
    }

    [Fact]
    public void when_no_zone_can_take_the_pod_the_reason_is_that_of_the_zone_with_the_most_free_cpu()
    {
        List<Host> fleet = [.. Hosts(2, "a", "fsn1-a", cpu: 64), .. Hosts(3, "b", "fsn1-b")];
        Assert.Equal("None of the 2 zones with a READY compute host can take this pod; the best candidate, zone fsn1-a with 128 cpu free, " +
                     "refuses it. N+2: zone fsn1-a has only 2 READY compute hosts and so takes no pods but confidential ones: replicas must stay " +
                     "on distinct hosts after any two hosts fail, which needs at least 3 hosts (4 for this pod of 2 replicas).",
            Reason(Placement.Place(Request(2), fleet)));
    }

    [Fact]
    public void the_running_replicas_of_a_pod_pin_its_zone()
    {
        // fsn1-b is emptier, but the pod already runs in fsn1-a.
        List<Host> fleet = [.. Hosts(5, "b", "fsn1-b", cpu: 64), .. Hosts(4, "a", "fsn1-a")];
        var inUse = fleet.Single(h => h.Name == "a1").Id;
        Assert.Equal(["a2"], Names(Placement.Place(Request(1) with { HostsInUse = [inUse] }, fleet)));

        // Even when fsn1-b could take the new replicas and fsn1-a cannot.
        var reason = Reason(Placement.Place(Request(2) with { HostsInUse = [inUse] }, fleet));
        Assert.Equal("The pod's running replicas are in zone fsn1-a, so new ones must go there too. N+2: a pod of 3 replicas needs at least " +
                     "5 READY compute hosts in its zone, so that its replicas stay on distinct hosts after any two hosts fail; zone fsn1-a has 4.",
            reason);
    }

    private static List<Host> ZoneWithFourHalfBusyHosts() =>
        Enumerable.Range(1, 4).Select(i => WithVms(Host($"fsn1-a-c{i}", "fsn1-a", cpu: 16, memory: 65536), 2, 2)).ToList();

    [Fact]
    public void a_request_that_would_leave_no_room_for_two_host_failures_is_unschedulable()
    {
        // 4 hosts of 16 cpu with 4 used each; 2 × 9 more leaves 30 free, but losing the two busiest hosts displaces 26 cpu.
        var reason = Reason(Placement.Place(Request(2, cpu: 9), ZoneWithFourHalfBusyHosts()));
        Assert.Equal("N+2: placing 2 replicas of 9 cpu and 1024 MiB on fsn1-a-c1, fsn1-a-c2 would leave zone fsn1-a unable to absorb the loss " +
                     "of two hosts: if hosts fsn1-a-c1 and fsn1-a-c2 failed, their 26 cpu would not fit into the 24 cpu free on the other 2 hosts " +
                     "of zone fsn1-a.", reason);
    }

    [Fact]
    public void a_request_that_leaves_just_enough_room_for_two_host_failures_is_placed()
    {
        // 2 × 8 more leaves 32 free: losing two hosts displaces 24 cpu into the 24 free on the other two.
        Assert.Equal(["fsn1-a-c1", "fsn1-a-c2"], Names(Placement.Place(Request(2, cpu: 8), ZoneWithFourHalfBusyHosts())));
    }

    [Fact]
    public void memory_counts_for_n_plus_2_as_much_as_cpu()
    {
        var fleet = Hosts(4, cpu: 64).Select(h => WithVms(h, 2, 1, 4096)).ToList();
        Assert.Contains("if hosts h1 and h2 failed, their 16896 MiB would not fit into the 16384 MiB free on the other 2 hosts of zone z1",
            Reason(Placement.Place(Request(1, cpu: 1, memory: 512), fleet)));
        Assert.Equal(["h1"], Names(Placement.Place(Request(1, cpu: 1, memory: 512), Hosts(4, cpu: 64))));
    }

    [Fact]
    public void a_pod_may_have_at_most_two_replicas_fewer_than_its_zone_has_hosts()
    {
        var fleet = Hosts(5);
        Assert.Equal(["h1", "h2", "h3"], Names(Placement.Place(Request(3), fleet)));
        Assert.Contains("a pod of 4 replicas needs at least 6 READY compute hosts in its zone", Reason(Placement.Place(Request(4), fleet)));

        // Running replicas count as well.
        var running = Request(2) with { HostsInUse = [fleet[0].Id, fleet[1].Id] };
        Assert.Contains("a pod of 4 replicas needs at least 6 READY compute hosts in its zone", Reason(Placement.Place(running, fleet)));
    }

    [Fact]
    public void a_zone_with_two_hosts_takes_no_ordinary_pod_but_a_confidential_pod_still_lands_on_its_sev_snp_host()
    {
        Host[] fleet = [Host("a", cpuUsed: 2), Host("sev", sev: true)];
        Assert.StartsWith("N+2: zone z1 has only 2 READY compute hosts and so takes no pods but confidential ones",
            Reason(Placement.Place(Request(1), fleet)));
        Assert.Equal(["sev"], Names(Placement.Place(Request(1, confidential: true), fleet)));
    }

    [Fact]
    public void a_confidential_pod_may_not_take_the_room_a_zone_keeps_for_two_host_failures()
    {
        Host[] fleet = [Host("a", cpuUsed: 4), Host("b", cpuUsed: 4), Host("c", cpuUsed: 4), Host("sev", sev: true)];
        Assert.Equal("N+2: this confidential pod (6 cpu, 1024 MiB) on sev would take the room zone z1 keeps for the loss of two hosts: " +
                     "if hosts a and b failed, their 8 cpu would not fit into the 6 cpu free on the other 2 hosts of zone z1.",
            Reason(Placement.Place(Request(1, cpu: 6, confidential: true), fleet)));
        Assert.Equal(["sev"], Names(Placement.Place(Request(1, cpu: 4, confidential: true), fleet)));
    }

    [Fact]
    public void a_microvm_too_big_to_be_re_placed_on_any_single_remaining_host_is_refused()
    {
        // In sum the small hosts have room for 16 cpu, but not one of them has 16 cpu free.
        Assert.Equal("N+2: placing 1 replica of 16 cpu and 1024 MiB on big1 would leave zone z1 unable to absorb the loss of two hosts: " +
                     "if host big1 failed, its microVM of 16 cpu and 1024 MiB could not be re-placed: no other host of zone z1 has 16 cpu and " +
                     "1024 MiB free.",
            Reason(Placement.Place(Request(1, cpu: 16), [.. Hosts(1, "big", cpu: 32), .. Hosts(4, "s")])));

        // With one other big host, losing both leaves the VM homeless.
        Assert.EndsWith("if hosts big1 and big2 failed, the microVM of 16 cpu and 1024 MiB on big1 could not be re-placed: big2 is the only " +
                        "other host of zone z1 with 16 cpu and 1024 MiB free.",
            Reason(Placement.Place(Request(1, cpu: 16), [.. Hosts(2, "big", cpu: 32), .. Hosts(3, "s")])));

        // With two, any two failures leave one.
        Assert.Equal(["big1"], Names(Placement.Place(Request(1, cpu: 16), [.. Hosts(3, "big", cpu: 32), .. Hosts(2, "s")])));
    }

    [Fact]
    public void the_answer_does_not_depend_on_the_order_of_the_fleet()
    {
        // Two zones of equal free cpu and hosts of equal load: every choice is a tie, broken by zone and host name.
        var fleet = Enumerable.Range(1, 12).Select(i => Host($"h{i:00}", i % 2 == 1 ? "fsn1-b" : "fsn1-a")).ToList();
        var request = Request(3);
        var tooMany = Request(5);
        var refusal = Reason(Placement.Place(tooMany, fleet));
        Assert.StartsWith("None of the 2 zones with a READY compute host can take this pod; the best candidate, zone fsn1-a", refusal);

        var random = new Random(1234);
        for (var i = 0; i < 20; i++)
        {
            var shuffled = fleet.OrderBy(_ => random.Next()).ToList();
            Assert.Equal(["h02", "h04", "h06"], Names(Placement.Place(request, shuffled)));
            Assert.Equal(refusal, Reason(Placement.Place(tooMany, shuffled)));
        }
    }
}
