using System.Net;
using System.Net.Sockets;
using Kraud.Api.Ingresses;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;
using Microsoft.Extensions.Configuration;

namespace Kraud.Tests.Domain;

public class IngressPlacementSpecs
{
    private static IngressHostSlot Slot(string name, string zone, int free = 8) => new(Guid.NewGuid(), name, zone, free);

    [Fact]
    public void n_plus_1_replicas_go_to_the_roomier_zone_and_n_to_the_other_on_distinct_hosts()
    {
        var hosts = new[] { Slot("a1", "a"), Slot("a2", "a", 1), Slot("b1", "b"), Slot("b2", "b"), Slot("b3", "b") };
        var replicas = IngressPlacement.Place(1, hosts);
        Assert.Equal(["b", "b", "a"], replicas.Select(r => r.Zone));
        Assert.Equal(3, replicas.Select(r => r.HostId).Distinct().Count());
        var two = IngressPlacement.Place(2, hosts.Append(Slot("a3", "a")).ToList());
        Assert.Equal(5, two.Count);
        Assert.Equal([2, 3], two.GroupBy(r => r.Zone).Select(g => g.Count()).Order());
    }

    [Fact]
    public void a_zone_without_free_ingress_hosts_or_a_single_zone_is_unschedulable_with_the_reason()
    {
        var full = Assert.Throws<DomainException>(() => IngressPlacement.Place(1, [Slot("a1", "a"), Slot("a2", "a"), Slot("b1", "b", 0)]));
        Assert.Equal(ErrorCode.Unschedulable, full.Code);
        Assert.Contains("zone b has 0 READY INGRESS host(s) with free capacity, 1 needed", full.Message);
        var single = Assert.Throws<DomainException>(() => IngressPlacement.Place(1, [Slot("a1", "a"), Slot("a2", "a")]));
        Assert.Contains("2 zones", single.Message);
    }
}

public class IngressDeciderSpecs
{
    private static readonly Guid Pod = Guid.NewGuid();
    private static readonly IngressFacts Facts = new(new Dictionary<Guid, RoutedPod> { [Pod] = new(Pod, "web", [("a", "a1")]) },
        [new(Guid.NewGuid(), "i1", "a", 8), new(Guid.NewGuid(), "i2", "a", 8), new(Guid.NewGuid(), "i3", "b", 8)], "203.0.113.7");

    private static CreateIngress Direct(bool accept, params FirewallRule[] rules) => new(Guid.NewGuid(), Guid.NewGuid(), "game", IngressKind.Direct,
        [new IngressRoute("game.example.com", "/", Pod, 7777)], null, 7777, "udp", rules, accept, 1, Principal.System("test"), DateTimeOffset.UnixEpoch);

    [Fact]
    public void a_direct_ingress_is_refused_until_the_exposure_is_accepted_and_then_binds_to_the_rack_of_the_pod()
    {
        var rule = new FirewallRule("allow", "udp", 7777, "0.0.0.0/0");
        Assert.Equal(ErrorCode.Precondition, Assert.Throws<DomainException>(() => IngressDecider.Decide(Direct(false, rule), Ingress.Initial, Facts)).Code);
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => IngressDecider.Decide(Direct(true), Ingress.Initial, Facts)).Code);
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() =>
            IngressDecider.Decide(Direct(true, rule with { Source = "10.0.0.1/8" }), Ingress.Initial, Facts)).Code);
        var created = Assert.IsType<IngressCreated>(Assert.Single(IngressDecider.Decide(Direct(true, rule), Ingress.Initial, Facts)));
        Assert.Equal(new DirectExposure("203.0.113.7", "UDP", 7777, "a", "a1"), created.Exposure);
        Assert.Equal("ALLOW", Assert.Single(created.Firewall).Action);
        Assert.Empty(created.Replicas);
    }

    [Fact]
    public void a_route_to_a_pod_the_tenant_does_not_have_is_not_found_and_a_bad_host_is_invalid()
    {
        var c = new CreateIngress(Guid.NewGuid(), Guid.NewGuid(), "web", IngressKind.Managed, [new IngressRoute("web.example.com", "/", Guid.NewGuid(), 80)], null,
            null, null, [], false, 1, Principal.System("test"), DateTimeOffset.UnixEpoch);
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<DomainException>(() => IngressDecider.Decide(c, Ingress.Initial, Facts)).Code);
        var bad = c with { Routes = [new IngressRoute("not a host", "/", Pod, 80)] };
        Assert.Equal(ErrorCode.Validation, Assert.Throws<DomainException>(() => IngressDecider.Decide(bad, Ingress.Initial, Facts)).Code);
    }

    [Fact]
    public void a_domain_is_verified_only_by_its_txt_record_and_serves_its_subdomains_afterwards()
    {
        var c = new CreateIngress(Guid.NewGuid(), Guid.NewGuid(), "web", IngressKind.Managed, [new IngressRoute("www.shop.example", "/", Pod, 80)], null,
            null, null, [], false, 1, Principal.System("test"), DateTimeOffset.UnixEpoch);
        var ingress = Fold.Events<Ingress>(IngressDecider.Decide(c, Ingress.Initial, Facts));
        ingress = IngressDecider.Decide(new AddIngressDomain(ingress.Id, "shop.example", "tok", DateTimeOffset.UnixEpoch), ingress)
            .Aggregate(ingress, (s, e) => s.Evolve(e));
        Assert.False(ingress.Serves("www.shop.example"));
        Assert.Equal(ErrorCode.Precondition, Assert.Throws<DomainException>(() =>
            IngressDecider.Decide(new VerifyIngressDomain(ingress.Id, "shop.example", false, "no TXT record", DateTimeOffset.UnixEpoch), ingress)).Code);
        ingress = IngressDecider.Decide(new VerifyIngressDomain(ingress.Id, "shop.example", true, "TXT", DateTimeOffset.UnixEpoch), ingress)
            .Aggregate(ingress, (s, e) => s.Evolve(e));
        Assert.True(ingress.Serves("www.shop.example"));
        Assert.False(ingress.Serves("evilshop.example"));
    }
}

public class DnsTxtResolverSpecs
{
    [Fact]
    public async Task the_default_resolver_asks_a_dns_server_for_txt_records_and_reads_its_answer()
    {
        using var server = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)server.Client.LocalEndPoint!).Port;
        var answering = Task.Run(async () =>
        {
            var query = await server.ReceiveAsync();
            // Echo the header and the question (not the EDNS record the client adds), then one TXT answer (name by pointer
            // to the question) made of two strings.
            var questionEnd = 12;
            while (query.Buffer[questionEnd] != 0) questionEnd += query.Buffer[questionEnd] + 1;
            var answer = query.Buffer.Take(questionEnd + 5).ToList();
            answer[2] = 0x81; answer[3] = 0x80; answer[7] = 1; answer[10] = 0; answer[11] = 0;
            byte[] text1 = "kraud-verify="u8.ToArray(), text2 = "abc"u8.ToArray();
            var rdata = new List<byte> { (byte)text1.Length };
            rdata.AddRange(text1);
            rdata.Add((byte)text2.Length);
            rdata.AddRange(text2);
            answer.AddRange([0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0, (byte)rdata.Count]);
            answer.AddRange(rdata);
            await server.SendAsync(answer.ToArray(), query.RemoteEndPoint);
            return query.Buffer;
        });
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Network:DnsServer"] = $"127.0.0.1:{port}" }).Build();
        var records = await new DnsTxtResolver(config).TxtAsync("_kraud-challenge.shop.example", CancellationToken.None);
        Assert.Equal(["kraud-verify=abc"], records);
        var question = await answering;
        var end = 12;
        while (question[end] != 0) end += question[end] + 1;
        Assert.Equal(16, question[end + 2]); // QTYPE TXT
    }
}

public class IngressRepairSpecs
{
    private static readonly IngressHostSlot A1 = new(Guid.NewGuid(), "a1", "a", 8), A2 = new(Guid.NewGuid(), "a2", "a", 8),
        B1 = new(Guid.NewGuid(), "b1", "b", 8), B2 = new(Guid.NewGuid(), "b2", "b", 8), B3 = new(Guid.NewGuid(), "b3", "b", 3);

    private static readonly DateTimeOffset At = DateTimeOffset.UnixEpoch;

    /// <summary>A managed ingress tolerating one failure, placed on b1, b2 (N+1) and a1 (N).</summary>
    private static Ingress Placed()
    {
        var pod = Guid.NewGuid();
        var create = new CreateIngress(Guid.NewGuid(), Guid.NewGuid(), "shop", IngressKind.Managed, [new IngressRoute("shop.example.com", "/", pod, 80)], null,
            null, null, [], false, 1, Principal.System("test"), At);
        var ingress = Fold.Events<Ingress>(IngressDecider.Decide(create, Ingress.Initial,
            new IngressFacts(new Dictionary<Guid, RoutedPod> { [pod] = new(pod, "web", []) }, [A1, B1, B2], null)));
        Assert.Equal(["b1", "b2", "a1"], ingress.Replicas.Select(r => r.HostName));
        return ingress;
    }

    private static IReadOnlyList<object> Repair(Ingress ingress, IReadOnlyList<IngressHostSlot> hosts, params IngressHostSlot[] leaving) =>
        IngressDecider.Decide(new RepairIngress(ingress.Id, leaving.ToDictionary(h => h.HostId, h => $"ingress host {h.Name} failed"), At), ingress, hosts);

    [Fact]
    public void a_replica_on_a_failed_host_moves_to_the_roomiest_free_host_of_its_zone_that_the_ingress_does_not_use_yet()
    {
        var ingress = Placed();
        var moved = Assert.IsType<IngressReplicaMoved>(Assert.Single(Repair(ingress, [A1, A2, B1, B2, B3], B1)));
        Assert.Equal(("b1", "b3", "ingress host b1 failed"), (moved.From.HostName, moved.To.HostName, moved.Reason));
        var after = ingress.Evolve(moved);
        Assert.Equal(["b3", "b2", "a1"], after.Replicas.Select(r => r.HostName));
        Assert.False(after.Degraded);
        Assert.Empty(Repair(after, [A1, A2, B1, B2, B3], B1));
    }

    [Fact]
    public void a_replica_whose_zone_has_no_room_is_lost_and_comes_back_when_the_zone_has_a_free_host_again()
    {
        var ingress = Placed();
        var full = B3 with { Free = 0 };
        var lost = Assert.IsType<IngressReplicaLost>(Assert.Single(Repair(ingress, [A1, A2, B1, B2, full], B1)));
        Assert.Contains("zone b has no other READY INGRESS host with free capacity", lost.Reason);
        var degraded = ingress.Evolve(lost);
        Assert.True(degraded.Degraded);
        Assert.Equal(["b2", "a1"], degraded.Replicas.Select(r => r.HostName));
        // Room in the other zone does not count: N+1 and N per zone is the point.
        Assert.Empty(Repair(degraded, [A1, A2, B1 with { Free = 0 }, B2, full]));

        var restored = Assert.IsType<IngressReplicaRestored>(Assert.Single(Repair(degraded, [A1, A2, B1, B2, full])));
        Assert.Equal("b1", restored.Replica.HostName);
        var healed = degraded.Evolve(restored);
        Assert.False(healed.Degraded);
        Assert.Equal(3, healed.Replicas.Select(r => r.HostId).Distinct().Count());
    }

    [Fact]
    public void two_replicas_leaving_at_once_never_land_on_one_host()
    {
        var ingress = Placed();
        var events = Repair(ingress, [A1, A2, B1, B2, B3 with { Free = 1 }], B1, B2);
        Assert.Equal(2, events.Count);
        var after = events.Aggregate(ingress, (i, e) => i.Evolve(e));
        Assert.Equal(["b3", "a1"], after.Replicas.Select(r => r.HostName));
        Assert.True(after.Degraded);
    }
}

public class IngressOwnershipSpecs
{
    [Fact]
    public void an_ingress_an_app_made_is_rerouted_and_deleted_only_on_the_apps_behalf()
    {
        var pod = Guid.NewGuid();
        var app = new ResourceOwner(ResourceOwner.App, Guid.NewGuid(), "share");
        var by = Principal.System("test");
        var facts = new IngressFacts(new Dictionary<Guid, RoutedPod> { [pod] = new(pod, "web", []) },
            [new(Guid.NewGuid(), "a1", "a", 8), new(Guid.NewGuid(), "a2", "a", 8), new(Guid.NewGuid(), "b1", "b", 8)], null);
        var route = new IngressRoute("share.example.com", "/", pod, 80);
        var events = IngressDecider.Decide(new CreateIngress(Guid.NewGuid(), Guid.NewGuid(), "share", IngressKind.Managed, [route], null, null, null, [],
            false, 1, by, DateTimeOffset.UnixEpoch, app), Ingress.Initial, facts);
        var ingress = Fold.Events<Ingress>(events);
        Assert.Equal(app, ingress.Owner);

        foreach (var refused in new Func<IReadOnlyList<object>>[]
                 {
                     () => IngressDecider.Decide(new DeleteIngress(ingress.Id, by, DateTimeOffset.UnixEpoch), ingress),
                     () => IngressDecider.Decide(new SetIngressRoutes(ingress.Id, [route with { Port = 8080 }], by, DateTimeOffset.UnixEpoch), ingress, facts),
                 })
            Assert.Contains("Ingress share is part of app 'share'", Assert.Throws<DomainException>(refused).Message);

        Assert.Single(IngressDecider.Decide(new SetIngressRoutes(ingress.Id, [route with { Port = 8080 }], by, DateTimeOffset.UnixEpoch, app.Id), ingress, facts));
        Assert.IsType<IngressDeleted>(Assert.Single(IngressDecider.Decide(new DeleteIngress(ingress.Id, by, DateTimeOffset.UnixEpoch, app.Id), ingress)));
    }
}
