using Kraud.Domain.Common;
using Kraud.Domain.Network;

namespace Kraud.Tests.Domain;

public class IpamSpecs
{
    [Fact]
    public void a_tenant_prefix_is_a_ula_48_and_another_attempt_gives_another_prefix()
    {
        var tenant = Guid.NewGuid();
        var prefix = Ipam.Ipv6PrefixFor(tenant, 0);
        Assert.Matches("^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::/48$", prefix);
        Assert.Equal(prefix, Ipam.Ipv6PrefixFor(tenant, 0));
        Assert.NotEqual(prefix, Ipam.Ipv6PrefixFor(tenant, 1));
    }

    [Fact]
    public void ipv4_blocks_are_the_23s_of_10_0_0_0_8()
    {
        Assert.Equal("10.0.0.0/23", Ipam.Ipv4Block(0));
        Assert.Equal("10.0.2.0/23", Ipam.Ipv4Block(1));
        Assert.Equal("10.255.254.0/23", Ipam.Ipv4Block(Ipam.Ipv4Blocks - 1));
        Assert.Equal(12345, Ipam.Ipv4BlockIndex(Ipam.Ipv4Block(12345)));
        Assert.Equal("10.0.3.254", Ipam.Ipv4Address(1, 510));
    }

    [Fact]
    public void leases_take_the_lowest_free_offset_and_skip_network_gateway_and_broadcast()
    {
        Assert.Equal(2, Ipam.FreeOffset(new HashSet<int>()));
        Assert.Equal(4, Ipam.FreeOffset(new HashSet<int> { 2, 3 }));
        Assert.Null(Ipam.FreeOffset(Enumerable.Range(Ipam.FirstHostOffset, Ipam.HostOffsets).ToHashSet()));
        Assert.Equal(509, Ipam.HostOffsets);
    }

    [Fact]
    public void a_namespace_gets_the_next_64_of_the_vpc_and_a_microvm_the_same_offset_in_both_families()
    {
        var tenant = Guid.NewGuid();
        var vpc = Fold.Events<Vpc>(VpcDecider.Decide(new CreateVpc(tenant, "fd12:3456:789a::/48", DateTimeOffset.UnixEpoch), Vpc.Initial));
        vpc = Apply(vpc, VpcDecider.Decide(new AddVpcNamespace(tenant, "default", 7, DateTimeOffset.UnixEpoch), vpc));
        vpc = Apply(vpc, VpcDecider.Decide(new AddVpcNamespace(tenant, "backend", 9, DateTimeOffset.UnixEpoch), vpc));
        var backend = vpc.Namespaces["backend"];
        Assert.Equal("fd12:3456:789a:2::/64", backend.Ipv6Cidr);
        Assert.Equal("10.0.18.0/23", backend.Ipv4Cidr);
        Assert.Equal(("fd12:3456:789a:2::10a", "10.0.19.10"), vpc.Addresses(backend, 266));
        Assert.Empty(VpcDecider.Decide(new AddVpcNamespace(tenant, "backend", 11, DateTimeOffset.UnixEpoch), vpc));
        Assert.Equal(ErrorCode.Conflict,
            Assert.Throws<DomainException>(() => VpcDecider.Decide(new AddVpcNamespace(tenant, "other", 9, DateTimeOffset.UnixEpoch), vpc)).Code);
        Assert.Equal(ErrorCode.Validation,
            Assert.Throws<DomainException>(() => VpcDecider.Decide(new AddVpcNamespace(tenant, "Bad_Name", 12, DateTimeOffset.UnixEpoch), vpc)).Code);
    }

    private static Vpc Apply(Vpc vpc, IReadOnlyList<object> events) => events.Aggregate(vpc, (s, e) => s.Evolve(e));
}

public class MeshSpecs
{
    private static readonly Guid TenantA = Guid.NewGuid(), TenantB = Guid.NewGuid();
    private static readonly MeshHost H1 = new(Guid.NewGuid(), "h1", "k1", "h1:51820"), H2 = new(Guid.NewGuid(), "h2", "k2", "h2:51820"),
        H3 = new(Guid.NewGuid(), "h3", "k3", "h3:51820"), H4 = new(Guid.NewGuid(), "h4", null, null);

    private static MeshVm Vm(Guid tenant, MeshHost host, string ip4) => new(Guid.NewGuid(), tenant, host.HostId, "fd00::" + ip4.Split('.')[^1], ip4);

    [Fact]
    public void hosts_peer_only_where_they_share_a_tenant_and_allow_only_that_tenants_addresses()
    {
        var sets = Mesh.PeerSets([Vm(TenantA, H1, "10.0.0.2"), Vm(TenantA, H2, "10.0.0.3"), Vm(TenantB, H2, "10.0.4.2"), Vm(TenantB, H3, "10.0.4.3")],
            [H1, H2, H3]);
        var h1 = Assert.Single(sets[H1.HostId]);
        Assert.Equal(("h2", "k2", "h2:51820"), (h1.HostName, h1.PublicKey, h1.Endpoint));
        Assert.Equal(["10.0.0.3/32", "fd00::3/128"], h1.AllowedIps.ToArray());
        Assert.Equal(["h1", "h3"], sets[H2.HostId].Select(p => p.HostName));
        Assert.Equal(["10.0.4.3/32", "fd00::3/128"], sets[H2.HostId][1].AllowedIps.ToArray());
        Assert.Equal(["10.0.4.2/32", "fd00::2/128"], Assert.Single(sets[H3.HostId]).AllowedIps.ToArray());
    }

    [Fact]
    public void a_host_without_a_public_key_is_no_ones_peer_but_learns_its_own_peers()
    {
        var sets = Mesh.PeerSets([Vm(TenantA, H1, "10.0.0.2"), Vm(TenantA, H4, "10.0.0.3")], [H1, H4]);
        Assert.Empty(sets[H1.HostId]);
        Assert.Equal("h1", Assert.Single(sets[H4.HostId]).HostName);
    }

    [Fact]
    public void a_host_that_runs_nothing_has_no_peers_and_equal_sets_compare_equal()
    {
        var vms = new[] { Vm(TenantA, H1, "10.0.0.2"), Vm(TenantA, H2, "10.0.0.3") };
        var sets = Mesh.PeerSets(vms, [H1, H2, H3]);
        Assert.Empty(sets[H3.HostId]);
        Assert.True(Mesh.SameSet(sets[H1.HostId], Mesh.PeerSets(vms.Reverse(), [H3, H2, H1])[H1.HostId]));
        Assert.False(Mesh.SameSet(sets[H1.HostId], Mesh.PeerSets([vms[0], Vm(TenantA, H2, "10.0.0.4")], [H1, H2])[H1.HostId]));
    }
}

public class DataPlaneAddressSpecs
{
    private static readonly Guid Tenant = Guid.NewGuid();
    private static readonly MeshHost Compute = new(Guid.NewGuid(), "c1", "kc", "100.64.0.5:51820"), Other = new(Guid.NewGuid(), "c2", "ko", "100.64.0.6:51820"),
        Edge = new(Guid.NewGuid(), "i1", "ki", "100.64.0.9:51820");

    [Fact]
    public void a_microvms_gateway_is_offset_one_of_its_overlay_in_both_families()
    {
        Assert.Equal("10.33.182.1", Ipam.Ipv4Gateway("10.33.182.2"));
        Assert.Equal("10.33.182.1", Ipam.Ipv4Gateway("10.33.183.254"));
        Assert.Equal("fd9c:f53e:7de9:1::1", Ipam.Ipv6Gateway("fd9c:f53e:7de9:1::1fe"));
    }

    [Fact]
    public void an_ingress_host_peers_only_with_the_hosts_of_its_backends_and_each_side_allows_only_the_other_sides_addresses()
    {
        var backend = new MeshVm(Guid.NewGuid(), Tenant, Compute.HostId, "fd00::2", "10.0.0.2");
        var elsewhere = new MeshVm(Guid.NewGuid(), Tenant, Other.HostId, "fd00::3", "10.0.0.3");
        var sets = Mesh.PeerSets([backend, elsewhere], [Compute, Other, Edge], [new IngressLink(Edge.HostId, "100.96.0.9", backend.VmId)]);

        var toCompute = Assert.Single(sets[Edge.HostId]);
        Assert.Equal("c1", toCompute.HostName);
        Assert.Equal(["10.0.0.2/32", "fd00::2/128"], toCompute.AllowedIps.ToArray());
        var computePeers = sets[Compute.HostId].ToDictionary(p => p.HostName);
        Assert.Equal(["100.96.0.9/32"], computePeers["i1"].AllowedIps.ToArray());
        Assert.Equal(["10.0.0.3/32", "fd00::3/128"], computePeers["c2"].AllowedIps.ToArray());
        Assert.DoesNotContain(sets[Other.HostId], p => p.HostName == "i1");
    }
}

public class ServiceDiscoverySpecs
{
    private static readonly DnsRecord[] Table =
    [
        new("web", "default", ["10.0.0.2"], ["fd00::2"]),
        new("web", "shop", ["10.0.2.2"], ["fd00:0:0:2::2"]),
        new("db", "shop", ["10.0.2.3"], ["fd00:0:0:2::3"]),
    ];

    [Fact]
    public void a_bare_name_resolves_in_the_askers_namespace_and_name_dot_namespace_from_anywhere()
    {
        Assert.Equal("10.0.0.2", ServiceDiscovery.Resolve(Table, "default", "web")!.Ip4[0]);
        Assert.Equal("10.0.2.2", ServiceDiscovery.Resolve(Table, "shop", "web")!.Ip4[0]);
        Assert.Equal("10.0.2.3", ServiceDiscovery.Resolve(Table, "default", "db.shop.")!.Ip4[0]);
        Assert.Null(ServiceDiscovery.Resolve(Table, "default", "db"));
        Assert.Null(ServiceDiscovery.Resolve(Table, "default", "db.other"));
    }
}
