using System.Net;
using System.Text.Json;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class IngressSpecs(KraudApp app)
{
    private const string IngressFields = "id name tenantId kind state readiness replicas { hostId zone } routes { host path podId port } " +
                                         "domains { name verified verificationToken } publicAddress warnings auth { method issuer audience allowedGroups } " +
                                         "firewall { action protocol port source } zone rack";

    private const string ConfigFields = "hostId hostName ingresses { ingressId name kind tlsHostnames auth { method issuer } routes { host path podId port backends } }";

    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static Task<GqlResponse> CreateAsync(TenantScope tenant, object input) =>
        tenant.Gql($"mutation($in: CreateIngressInput!) {{ createIngress(input: $in) {{ {IngressFields} }} }}", new { @in = input });

    private async Task<JsonElement> HostConfigAsync(string hostId) =>
        (await app.AsOperator($"query($h: ID!) {{ ingressHostConfig(hostId: $h) {{ {ConfigFields} }} }}", new { h = hostId })).ShouldSucceed()
        .Data.GetProperty("ingressHostConfig");

    private static JsonElement? EntryOf(JsonElement config, string ingressId) => config.GetProperty("ingresses").EnumerateArray()
        .Where(i => i.GetProperty("ingressId").GetString() == ingressId).Cast<JsonElement?>().FirstOrDefault();

    private static string Platform(string name) => $"{name}-{Guid.NewGuid():N}"[..24] + ".ingress.kraud.cloud";

    [Fact]
    public async Task a_managed_ingress_runs_2n_plus_1_replicas_across_two_zones_on_distinct_ingress_hosts_and_its_config_follows_the_pod()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("shop", replicas: 2)).Id(), "RUNNING");
        var host = Platform("shop");
        var ingress = (await CreateAsync(tenant, new { name = "shop", kind = "MANAGED", routes = new[] { new { host, path = "/", podId = pod.Id(), port = 8080 } } }))
            .ShouldSucceed().Data.GetProperty("createIngress");

        Assert.Equal(("MANAGED", "USABLE", "ACTIVE"), (ingress.GetProperty("kind").GetString(), ingress.GetProperty("readiness").GetString(), ingress.GetProperty("state").GetString()));
        Assert.Empty(ingress.GetProperty("warnings").EnumerateArray());
        var replicas = ingress.GetProperty("replicas").EnumerateArray().ToList();
        Assert.Equal(3, replicas.Count);
        Assert.Equal(3, replicas.Select(r => r.HostId()).Distinct().Count());
        Assert.All(replicas, r => Assert.Equal("Ingress", app.Agent(r.HostId()).Definition.Role));
        Assert.Equal([1, 2], replicas.GroupBy(r => r.GetProperty("zone").GetString()).Select(g => g.Count()).Order());
        Assert.All(replicas, r => Assert.Equal(app.Agent(r.HostId()).Definition.Zone, r.GetProperty("zone").GetString()));

        // Every replica host loads the route with the pod's VPC addresses as backends; after a restart, the new ones.
        var addresses = pod.Instances().Select(i => $"{i.GetProperty("ip4").GetString()}:8080").Order().ToList();
        foreach (var replica in replicas)
        {
            var entry = EntryOf(await HostConfigAsync(replica.HostId()), ingress.Id())!.Value;
            var route = Assert.Single(entry.GetProperty("routes").EnumerateArray());
            Assert.Equal(addresses, route.GetProperty("backends").EnumerateArray().Select(b => b.GetString()!).Order());
            Assert.Equal([host], entry.GetProperty("tlsHostnames").EnumerateArray().Select(h => h.GetString()));
        }
        (await tenant.Gql("mutation($id: ID!) { restartPod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        var restarted = await tenant.WaitForPodAsync(pod.Id(),
            p => p.State() == "RUNNING" && p.Instances().All(i => pod.Instances().All(o => o.Id() != i.Id())), Wait, "the pod runs new microVMs");
        var moved = restarted.Instances().Select(i => $"{i.GetProperty("ip4").GetString()}:8080").Order().ToList();
        Assert.NotEqual(addresses, moved);
        var after = Assert.Single(EntryOf(await HostConfigAsync(replicas[0].HostId()), ingress.Id())!.Value.GetProperty("routes").EnumerateArray());
        Assert.Equal(moved, after.GetProperty("backends").EnumerateArray().Select(b => b.GetString()!).Order());

        var other = await TenantScope.CreateAsync(app);
        Assert.Empty((await other.Gql("{ ingresses { id } }")).ShouldSucceed().Data.GetProperty("ingresses").EnumerateArray());
        (await other.Gql("mutation($id: ID!) { deleteIngress(id: $id) { id } }", new { id = ingress.Id() })).ShouldFailWith("NOT_FOUND");
        Assert.Equal(ingress.Id(), Assert.Single((await tenant.Gql("{ ingresses { id } }")).ShouldSucceed().Data.GetProperty("ingresses").EnumerateArray()).Id());

        (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { state } }", new { id = ingress.Id() })).ShouldSucceed();
        Assert.Null(EntryOf(await HostConfigAsync(replicas[0].HostId()), ingress.Id()));
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task a_zone_without_ingress_capacity_makes_a_managed_ingress_unschedulable_with_the_reason_and_appends_nothing()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("web")).Id(), "RUNNING");
        var route = new[] { new { host = Platform("web"), path = "/", podId = pod.Id(), port = 80 } };
        var events = await tenant.EventCountAsync();

        var wide = (await CreateAsync(tenant, new { name = "wide", kind = "MANAGED", routes = route, failuresTolerated = 2 })).ShouldFailWith("UNSCHEDULABLE");
        Assert.Contains("3 needed", wide.FirstErrorMessage);
        Assert.Contains("5 replicas across 2 zones", wide.FirstErrorMessage);

        var zoneB = app.Agents.All.Where(a => a.Definition is { Role: "Ingress", Zone: "fsn1-b" }).ToList();
        foreach (var agent in zoneB) await app.CordonAsync(agent.Id);
        try
        {
            var refused = (await CreateAsync(tenant, new { name = "web", kind = "MANAGED", routes = route })).ShouldFailWith("UNSCHEDULABLE");
            Assert.Contains("zone fsn1-b has 0 READY INGRESS host(s)", refused.FirstErrorMessage);
            Assert.Contains("3 replicas across 2 zones", refused.FirstErrorMessage);
        }
        finally
        {
            foreach (var agent in zoneB) await app.UncordonAsync(agent.Id);
        }
        Assert.Equal(events, await tenant.EventCountAsync());
        (await CreateAsync(tenant, new { name = "web", kind = "MANAGED", routes = route })).ShouldSucceed();
        await tenant.DeletePodsAsync();
    }

    private async Task<JsonElement> IngressAsync(TenantScope tenant, string id) =>
        (await tenant.Gql($"{{ ingresses {{ {IngressFields} }} }}")).ShouldSucceed().Data.GetProperty("ingresses").EnumerateArray().Single(i => i.Id() == id);

    /// <summary>Reads the ingress, and again after each commit to its stream (its view changes only then), until <paramref name="done"/>.</summary>
    private Task<JsonElement> IngressUntilAsync(TenantScope tenant, string id, Func<JsonElement, bool> done, TimeSpan timeout, string what) =>
        app.StreamCommits.UntilAsync(Guid.Parse(id), () => IngressAsync(tenant, id), done, timeout, what);

    private static IReadOnlyList<string> HostsOf(JsonElement ingress) => ingress.GetProperty("replicas").EnumerateArray().Select(r => r.HostId()).ToList();

    [Fact]
    public async Task a_replica_on_a_failed_ingress_host_moves_within_its_zone_and_one_its_zone_cannot_take_is_lost_until_the_host_is_back()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("shop")).Id(), "RUNNING");
        var ingress = (await CreateAsync(tenant, new { name = "shop", kind = "MANAGED", routes = new[] { new { host = Platform("shop"), path = "/", podId = pod.Id(), port = 80 } } }))
            .ShouldSucceed().Data.GetProperty("createIngress");
        var replicas = ingress.GetProperty("replicas").EnumerateArray().ToList();
        // Two INGRESS hosts per zone: the zone with N (one) replica has a spare host, the zone with N+1 has none.
        var byZone = replicas.GroupBy(r => r.GetProperty("zone").GetString()!).ToDictionary(g => g.Key, g => g.Select(r => r.HostId()).ToList());
        var single = byZone.Single(z => z.Value.Count == 1);
        var pair = byZone.Single(z => z.Value.Count == 2);
        var powered = new List<string>();
        try
        {
            var failed = single.Value[0];
            app.Agent(failed).PowerOff();
            powered.Add(failed);
            var moved = await IngressUntilAsync(tenant, ingress.Id(), i => !HostsOf(i).Contains(failed) && HostsOf(i).Count == 3,
                TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 30), "the replica left the failed ingress host");
            Assert.Equal("ACTIVE", moved.GetProperty("state").GetString());
            var spare = HostsOf(moved).Except(HostsOf(ingress)).Single();
            Assert.Equal(single.Key, app.Agent(spare).Definition.Zone);
            Assert.NotNull(EntryOf(await HostConfigAsync(spare), ingress.Id()));
            var move = Assert.Single((await app.EventsOf(Guid.Parse(ingress.Id()))).Select(e => e.Data).OfType<Kraud.Domain.Ingresses.IngressReplicaMoved>());
            Assert.Contains("failed", move.Reason);
            var incident = (await app.AsOperator("query($h: ID, $f: DateTime!, $t: DateTime!) { incident(hostId: $h, from: $f, to: $t) { summary } }",
                new { h = failed, f = DateTime.UtcNow.AddMinutes(-2), t = DateTime.UtcNow.AddSeconds(1) })).ShouldSucceed().Data.GetProperty("incident");
            Assert.Contains(incident.GetProperty("summary").EnumerateArray(), l => l.GetString()!.Contains($"ingress shop moved its replica from {app.Agent(failed).Name} to {app.Agent(spare).Name}"));

            var lostHost = pair.Value[0];
            app.Agent(lostHost).PowerOff();
            powered.Add(lostHost);
            var degraded = await IngressUntilAsync(tenant, ingress.Id(), i => i.GetProperty("state").GetString() == "DEGRADED",
                TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 30), "the ingress runs short");
            Assert.Equal(new[] { pair.Value[1], spare }.Order(), HostsOf(degraded).Order());
            Assert.Contains(degraded.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.StartsWith("DEGRADED", StringComparison.Ordinal) && w.GetString()!.Contains(pair.Key));
            Assert.Null(EntryOf(await HostConfigAsync(lostHost), ingress.Id()));
        }
        finally
        {
            foreach (var host in powered) app.Agent(host).PowerOn();
        }
        // Both hosts must be READY again before the next spec of the collection places ingresses: the healed ingress
        // below proves it only for the host of the pair's zone (CI saw the next spec find the other zone one host short).
        foreach (var host in powered)
            await app.WaitForHostStateAsync(host, "READY", TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 30), "the host is READY again");
        var healed = await IngressUntilAsync(tenant, ingress.Id(), i => i.GetProperty("state").GetString() == "ACTIVE" && HostsOf(i).Count == 3,
            TimeSpan.FromSeconds(60), "the lost replica returns when its host is READY again");
        Assert.Equal(2, HostsOf(healed).Count(h => app.Agent(h).Definition.Zone == pair.Key));
        Assert.Equal(3, HostsOf(healed).Distinct().Count());
        (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { state } }", new { id = ingress.Id() })).ShouldSucceed();
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task draining_an_ingress_host_moves_its_replicas_to_another_host_of_the_zone()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("drained")).Id(), "RUNNING");
        var ingress = (await CreateAsync(tenant, new { name = "drained", kind = "MANAGED", routes = new[] { new { host = Platform("drained"), path = "/", podId = pod.Id(), port = 80 } } }))
            .ShouldSucceed().Data.GetProperty("createIngress");
        // The zone with one replica has a spare INGRESS host to take it.
        var host = ingress.GetProperty("replicas").EnumerateArray().GroupBy(r => r.GetProperty("zone").GetString()).Single(g => g.Count() == 1).Single().HostId();
        await app.DrainAsync(host);
        try
        {
            var moved = await IngressUntilAsync(tenant, ingress.Id(), i => !HostsOf(i).Contains(host) && HostsOf(i).Count == 3, Wait,
                "the replica left the drained host");
            Assert.Equal("ACTIVE", moved.GetProperty("state").GetString());
            Assert.Null(EntryOf(await HostConfigAsync(host), ingress.Id()));
            Assert.Contains("was drained", Assert.Single((await app.EventsOf(Guid.Parse(ingress.Id()))).Select(e => e.Data)
                .OfType<Kraud.Domain.Ingresses.IngressReplicaMoved>()).Reason);
        }
        finally
        {
            await app.UncordonAsync(host);
        }
        (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { state } }", new { id = ingress.Id() })).ShouldSucceed();
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task concurrent_creates_never_give_an_ingress_host_more_replicas_than_its_cores()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("burst")).Id(), "RUNNING");
        var ingressHosts = app.Agents.All.Where(a => a.Definition.Role == "Ingress").ToList();
        // More replicas than every ingress host together can run, all asked for at once.
        var attempts = ingressHosts.Sum(h => h.Definition.Cpu) / 3 + 6;
        var results = await Task.WhenAll(Enumerable.Range(0, attempts).Select(n => CreateAsync(tenant,
            new { name = $"burst-{n}", kind = "MANAGED", routes = new[] { new { host = Platform($"b{n}"), path = "/", podId = pod.Id(), port = 80 } } })));
        var created = results.Where(r => r.ErrorCodes.Count == 0).Select(r => r.Data.GetProperty("createIngress")).ToList();
        Assert.All(results.Where(r => r.ErrorCodes.Count > 0), r => Assert.Contains(r.ErrorCodes[0], new[] { "UNSCHEDULABLE", "CONFLICT" }));
        Assert.NotEmpty(created);
        Assert.True(created.Count < attempts, $"{created.Count} of {attempts} fit");

        var all = (await app.AsOperator("{ ingresses { id replicas { hostId } } }")).ShouldSucceed().Data.GetProperty("ingresses").EnumerateArray()
            .SelectMany(i => HostsOf(i)).GroupBy(h => h).ToDictionary(g => g.Key, g => g.Count());
        foreach (var host in ingressHosts)
            Assert.True(all.GetValueOrDefault(host.Id.ToString()) <= host.Definition.Cpu, $"{host.Name} runs {all.GetValueOrDefault(host.Id.ToString())} replicas");
        Assert.All(created, c => Assert.Equal(3, HostsOf(c).Distinct().Count()));

        foreach (var c in created) (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { state } }", new { id = c.Id() })).ShouldSucceed();
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task an_authenticated_ingress_needs_a_complete_auth_policy()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("admin")).Id(), "RUNNING");
        var routes = new[] { new { host = Platform("admin"), path = "/", podId = pod.Id(), port = 80 } };
        var events = await tenant.EventCountAsync();
        foreach (var (auth, says) in new (object?, string)[]
                 {
                     (null, "needs an auth policy"),
                     (new { method = "OIDC", issuer = "https://id.example.com" }, "audience"),
                     (new { method = "OIDC", issuer = "http://id.example.com", audience = "kraud" }, "https"),
                     (new { method = "SAML" }, "issuer"),
                     (new { method = "LDAP" }, "OIDC, SAML, BASIC"),
                 })
        {
            var r = (await CreateAsync(tenant, new { name = "admin", kind = "AUTHENTICATED", routes, auth })).ShouldFailWith("VALIDATION");
            Assert.Contains(says, r.FirstErrorMessage);
        }
        (await CreateAsync(tenant, new { name = "admin", kind = "MANAGED", routes, auth = new { method = "BASIC" } })).ShouldFailWith("VALIDATION");
        Assert.Equal(events, await tenant.EventCountAsync());

        var ingress = (await CreateAsync(tenant, new
        {
            name = "admin",
            kind = "AUTHENTICATED",
            routes,
            auth = new { method = "oidc", issuer = "https://id.example.com/realms/acme", audience = "kraud-admin", allowedGroups = new[] { "ops" } },
        }))
            .ShouldSucceed().Data.GetProperty("createIngress");
        Assert.Equal("EXPERIMENTAL", ingress.GetProperty("readiness").GetString());
        Assert.Contains(ingress.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.StartsWith("EXPERIMENTAL", StringComparison.Ordinal));
        Assert.Equal(3, ingress.GetProperty("replicas").GetArrayLength());
        var entry = EntryOf(await HostConfigAsync(ingress.GetProperty("replicas")[0].HostId()), ingress.Id())!.Value;
        Assert.Equal(("OIDC", "https://id.example.com/realms/acme"),
            (entry.GetProperty("auth").GetProperty("method").GetString(), entry.GetProperty("auth").GetProperty("issuer").GetString()));
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task a_direct_ingress_needs_accepted_exposure_and_its_firewall_reaches_every_microvm_of_the_pod()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("game", replicas: 2)).Id(), "RUNNING");
        var routes = new[] { new { host = "game.example.com", path = "/", podId = pod.Id(), port = 7777 } };
        var firewall = new[] { new { action = "ALLOW", protocol = "UDP", port = 7777, source = "198.51.100.0/24" } };
        var events = await tenant.EventCountAsync();

        var exposed = (await CreateAsync(tenant, new { name = "game", kind = "DIRECT", routes, port = 27015, protocol = "UDP", firewall })).ShouldFailWith("PRECONDITION");
        Assert.Contains("acceptExposure", exposed.FirstErrorMessage);
        (await CreateAsync(tenant, new { name = "game", kind = "DIRECT", routes, port = 27015, protocol = "UDP", acceptExposure = true })).ShouldFailWith("VALIDATION");
        (await CreateAsync(tenant, new
        {
            name = "game",
            kind = "DIRECT",
            routes,
            port = 27015,
            protocol = "UDP",
            acceptExposure = true,
            firewall = new[] { new { action = "ALLOW", protocol = "UDP", port = 7777, source = "everyone" } }
        })).ShouldFailWith("VALIDATION");
        Assert.Equal(events, await tenant.EventCountAsync());

        var ingress = (await CreateAsync(tenant, new { name = "game", kind = "DIRECT", routes, port = 27015, protocol = "UDP", firewall, acceptExposure = true }))
            .ShouldSucceed().Data.GetProperty("createIngress");
        Assert.Equal("EXPERIMENTAL", ingress.GetProperty("readiness").GetString());
        Assert.Contains(ingress.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("EXPERIMENTAL") && w.GetString()!.Contains("load balancing"));
        Assert.True(IPNetwork.Parse("203.0.113.0/24").Contains(IPAddress.Parse(ingress.GetProperty("publicAddress").GetString()!)));
        var first = app.Agent(pod.Instances()[0].HostId()).Definition;
        Assert.Equal((first.Zone, first.Rack), (ingress.GetProperty("zone").GetString(), ingress.GetProperty("rack").GetString()));
        Assert.Empty(ingress.GetProperty("replicas").EnumerateArray());

        const string rule = "ip saddr 198.51.100.0/24 udp dport 7777 accept";
        foreach (var vm in pod.Instances())
            await Eventually.Until(() => Task.FromResult(app.Agent(vm.HostId()).Firewalls.For(Guid.Parse(vm.Id())).Any(r => r.Contains(rule))), Wait,
                $"the host of microVM {vm.Id()} installed the firewall");

        // A microVM booted later (restart) gets the rules with its boot.
        (await tenant.Gql("mutation($id: ID!) { restartPod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        var restarted = await tenant.WaitForPodAsync(pod.Id(),
            p => p.State() == "RUNNING" && p.Instances().All(i => pod.Instances().All(o => o.Id() != i.Id())), Wait, "the pod runs new microVMs");
        foreach (var vm in restarted.Instances())
            await Eventually.Until(() => Task.FromResult(app.Agent(vm.HostId()).Firewalls.For(Guid.Parse(vm.Id())).Any(r => r.Contains(rule))), Wait,
                $"the new microVM {vm.Id()} has the firewall");

        (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { state } }", new { id = ingress.Id() })).ShouldSucceed();
        foreach (var vm in restarted.Instances())
            await Eventually.Until(() => Task.FromResult(app.Agent(vm.HostId()).Firewalls.For(Guid.Parse(vm.Id())).Count == 0), Wait, "the exposure is gone");
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task a_custom_domain_serves_only_after_its_txt_record_is_verified_and_belongs_to_one_ingress_at_a_time()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("blog")).Id(), "RUNNING");
        var domain = $"blog-{Guid.NewGuid():N}"[..16] + ".example.com";
        var ingress = (await CreateAsync(tenant, new { name = "blog", kind = "MANAGED", routes = new[] { new { host = domain, path = "/", podId = pod.Id(), port = 80 } } }))
            .ShouldSucceed().Data.GetProperty("createIngress");
        Assert.Contains(ingress.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains(domain));
        var replicaHost = ingress.GetProperty("replicas")[0].HostId();
        Assert.Empty(EntryOf(await HostConfigAsync(replicaHost), ingress.Id())!.Value.GetProperty("routes").EnumerateArray());

        var added = (await tenant.Gql("mutation($i: ID!, $n: String!) { addDomain(ingressId: $i, name: $n) { name verified verificationToken } }",
            new { i = ingress.Id(), n = domain })).ShouldSucceed().Data.GetProperty("addDomain");
        Assert.False(added.GetProperty("verified").GetBoolean());
        var token = added.GetProperty("verificationToken").GetString()!;
        Assert.StartsWith("kraud-verify=", token);

        const string verify = "mutation($i: ID!, $n: String!) { verifyDomain(ingressId: $i, name: $n) { name verified } }";
        var early = (await tenant.Gql(verify, new { i = ingress.Id(), n = domain })).ShouldFailWith("PRECONDITION");
        Assert.Contains($"_kraud-challenge.{domain}", early.FirstErrorMessage);
        app.TxtRecords.Publish($"_kraud-challenge.{domain}", "some-other-record");
        app.TxtRecords.Publish($"_kraud-challenge.{domain}", token);
        Assert.True((await tenant.Gql(verify, new { i = ingress.Id(), n = domain })).ShouldSucceed().Data.GetProperty("verifyDomain").GetProperty("verified").GetBoolean());

        var entry = EntryOf(await HostConfigAsync(replicaHost), ingress.Id())!.Value;
        Assert.Equal([domain], entry.GetProperty("tlsHostnames").EnumerateArray().Select(h => h.GetString()));
        Assert.Equal($"{Assert.Single(pod.Instances()).GetProperty("ip4").GetString()}:80",
            Assert.Single(Assert.Single(entry.GetProperty("routes").EnumerateArray()).GetProperty("backends").EnumerateArray()).GetString());

        // The domain is this ingress's: another ingress, of this tenant or another, cannot have it until it is released.
        var other = await TenantScope.CreateAsync(app);
        var otherPod = await other.CreatePodAsync("blog");
        var otherIngress = (await CreateAsync(other, new { name = "blog", kind = "MANAGED", routes = new[] { new { host = Platform("blog"), path = "/", podId = otherPod.Id(), port = 80 } } }))
            .ShouldSucceed().Data.GetProperty("createIngress");
        const string add = "mutation($i: ID!, $n: String!) { addDomain(ingressId: $i, name: $n) { name } }";
        (await other.Gql(add, new { i = otherIngress.Id(), n = domain })).ShouldFailWith("CONFLICT");
        (await other.Gql(add, new { i = ingress.Id(), n = "x." + domain })).ShouldFailWith("NOT_FOUND");
        (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { state } }", new { id = ingress.Id() })).ShouldSucceed();
        (await other.Gql(add, new { i = otherIngress.Id(), n = domain })).ShouldSucceed();
        await tenant.DeletePodsAsync();
        await other.DeletePodsAsync();
    }

    [Fact]
    public async Task the_platform_as_it_was_shows_an_ingress_while_it_existed_and_not_after_its_deletion()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("history")).Id(), "RUNNING");
        var ingress = (await CreateAsync(tenant, new { name = "history", kind = "MANAGED", routes = new[] { new { host = Platform("history"), path = "/", podId = pod.Id(), port = 80 } } }))
            .ShouldSucceed().Data.GetProperty("createIngress");
        // The compliance evidence lists it with the product table's barrier, on its replicas' hosts.
        var report = await app.Host.Scenario(x =>
        {
            x.Get.Url("/api/exports/compliance-report?format=json");
            x.WithRequestHeader("Authorization", $"Bearer {tenant.Token}");
            x.StatusCodeShouldBe(200);
        });
        var evidence = Assert.Single(JsonDocument.Parse(await report.ReadAsTextAsync()).RootElement.GetProperty("tenants")[0].GetProperty("resources")
            .EnumerateArray(), r => r.Id() == ingress.Id());
        Assert.Equal(("ingress", "Managed Ingress", "isolated machine"), (evidence.GetProperty("kind").GetString(), evidence.GetProperty("product").GetString(),
            evidence.GetProperty("isolationBarrier").GetString()));
        Assert.Equal(3, evidence.GetProperty("hosts").GetArrayLength());
        await Task.Delay(50);
        var existed = DateTime.UtcNow;
        await Task.Delay(50);
        (await tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { id } }", new { id = ingress.Id() })).ShouldSucceed();

        const string query = "query($t: DateTime!) { platformAt(asOf: $t) { ingresses { id kind routes { podId } } } }";
        var then = (await tenant.Gql(query, new { t = existed })).ShouldSucceed().Data.GetProperty("platformAt").GetProperty("ingresses");
        Assert.Equal(pod.Id(), Assert.Single(then.EnumerateArray(), i => i.Id() == ingress.Id()).GetProperty("routes")[0].GetProperty("podId").GetString());
        var now = (await tenant.Gql(query, new { t = DateTime.UtcNow.AddSeconds(1) })).ShouldSucceed().Data.GetProperty("platformAt").GetProperty("ingresses");
        Assert.DoesNotContain(now.EnumerateArray(), i => i.Id() == ingress.Id());
    }
}
