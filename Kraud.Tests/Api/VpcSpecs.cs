using System.Net;
using System.Text.Json;
using Kraud.Api.Common;
using Kraud.Domain.Pods;
using Kraud.Tests.Infrastructure;
using Marten;

namespace Kraud.Tests.Api;

[Collection(ApiCollection.Name)]
public class VpcSpecs(KraudApp app)
{
    private static readonly TimeSpan MeshWait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task every_tenant_gets_a_vpc_with_a_ula_48_of_its_own_encrypted_with_wireguard()
    {
        var a = await TenantScope.CreateAsync(app);
        var b = await TenantScope.CreateAsync(app);
        var vpcA = await a.VpcAsync();
        var vpcB = await b.VpcAsync();
        Assert.Equal(a.Id.ToString(), vpcA.GetProperty("tenantId").GetString());
        Assert.Equal("wireguard", vpcA.GetProperty("encryption").GetString());
        Assert.StartsWith("fd", vpcA.GetProperty("ipv6Prefix").GetString());
        Assert.EndsWith("::/48", vpcA.GetProperty("ipv6Prefix").GetString());
        Assert.NotEqual(vpcA.GetProperty("ipv6Prefix").GetString(), vpcB.GetProperty("ipv6Prefix").GetString());
        Assert.Empty(vpcA.GetProperty("peers").EnumerateArray());

        var viaTenant = (await a.Gql("query($id: ID!) { tenant(id: $id) { vpc { id ipv6Prefix } } }", new { id = a.Id })).ShouldSucceed();
        Assert.Equal(vpcA.GetProperty("id").GetString(), viaTenant.Data.GetProperty("tenant").GetProperty("vpc").GetProperty("id").GetString());
    }

    [Fact]
    public async Task a_tenant_sees_only_its_own_vpc_and_no_hosts_peer_set()
    {
        var a = await TenantScope.CreateAsync(app);
        var b = await TenantScope.CreateAsync(app);
        await b.CreatePodAsync("secret");
        var vpcs = (await a.Gql("{ vpcs { tenantId } }")).ShouldSucceed().Data.GetProperty("vpcs").EnumerateArray().ToList();
        Assert.Equal(a.Id.ToString(), Assert.Single(vpcs).GetProperty("tenantId").GetString());
        var host = app.Agents.All.First().Id;
        (await a.Gql("query($h: ID!) { wireguardPeers(hostId: $h) { revision } }", new { h = host })).ShouldFailWith("FORBIDDEN");
        var all = (await app.AsOperator("{ vpcs { tenantId } }")).ShouldSucceed().Data.GetProperty("vpcs").EnumerateArray()
            .Select(v => v.GetProperty("tenantId").GetString()).ToList();
        Assert.Contains(a.Id.ToString(), all);
        Assert.Contains(b.Id.ToString(), all);
        await b.DeletePodsAsync();
    }

    [Fact]
    public async Task concurrent_creates_and_restarts_never_lease_one_address_twice()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var other = await TenantScope.CreateAsync(app);
        var pods = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => i % 4 == 3
            ? other.CreatePodAsync($"o{i}", replicas: 2)
            : tenant.CreatePodAsync($"p{i}", replicas: 2)));
        var mine = pods.Where(p => p.GetProperty("tenantId").GetString() == tenant.Id.ToString()).ToList();
        foreach (var pod in mine) await tenant.WaitForPodAsync(pod.Id(), "RUNNING");
        // Restarts lease from the API's own transactions, concurrently with each other and the scheduler.
        await Task.WhenAll(mine.Select(p => tenant.Gql("mutation($id: ID!) { restartPod(id: $id) { id } }", new { id = p.Id() })));
        var running = new List<JsonElement>();
        foreach (var pod in mine)
            running.Add(await tenant.WaitForPodAsync(pod.Id(), p => p.State() == "RUNNING" && p.Instances().Count == 2,
                MeshWait, $"pod {pod.Id()} runs its new microVMs and the old ones stopped"));

        var vms = running.SelectMany(p => p.Instances()).ToList();
        Assert.Equal(mine.Count * 2, vms.Count);
        Assert.Equal(vms.Count, vms.Select(v => v.GetProperty("ip4").GetString()).Distinct().Count());
        Assert.Equal(vms.Count, vms.Select(v => v.GetProperty("ip6").GetString()).Distinct().Count());

        var vpc = await tenant.VpcAsync();
        var overlay = vpc.GetProperty("ipv4Overlay").GetString()!;
        var prefix = vpc.GetProperty("ipv6Prefix").GetString()!;
        Assert.All(vms, vm => Assert.True(InPrefix(vm.GetProperty("ip4").GetString()!, overlay), $"{vm} is outside {overlay}"));
        Assert.All(vms, vm => Assert.True(InPrefix(vm.GetProperty("ip6").GetString()!, prefix), $"{vm} is outside {prefix}"));
        Assert.NotEqual(overlay, (await other.VpcAsync()).GetProperty("ipv4Overlay").GetString());

        // What the database holds agrees: one claim per live microVM of the tenant, none left by the restarted ones.
        await using var session = app.Store.QuerySession();
        var claims = await session.Query<AddressClaim>().Where(c => c.Pool == overlay).ToListAsync();
        Assert.Equal(vms.Select(v => Guid.Parse(v.Id())).Order(), claims.Select(c => c.OwnerId).Order());
        await tenant.DeletePodsAsync();
        await other.DeletePodsAsync();
    }

    [Fact]
    public async Task a_stopped_microvm_gives_its_addresses_back()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var first = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("first")).Id(), "RUNNING");
        var ip4 = Assert.Single(first.Instances()).GetProperty("ip4").GetString();
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = first.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(first.Id(), "STOPPED");
        var second = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("second")).Id(), "RUNNING");
        Assert.Equal(ip4, Assert.Single(second.Instances()).GetProperty("ip4").GetString());
        Assert.Contains((await app.EventsOf(Guid.Parse(second.Id()))).Select(e => e.Data), e => e is PodReplicaAddressed);
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task pods_resolve_by_name_in_their_namespace_and_by_name_dot_namespace_across()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var web = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("web", replicas: 2)).Id(), "RUNNING");
        var api = (await tenant.Gql("mutation { createPod(input: {name: \"api\", namespace: \"backend\", image: \"api:1\", cpu: 1, memoryMiB: 256}) { id } }"))
            .ShouldSucceed().Data.GetProperty("createPod").Id();
        var backend = await tenant.WaitForPodAsync(api, "RUNNING");

        var vpc = await tenant.VpcAsync();
        var namespaces = vpc.GetProperty("namespaces").EnumerateArray().ToDictionary(n => n.GetProperty("name").GetString()!);
        Assert.Equal(["backend", "default"], namespaces.Keys.Order());
        Assert.NotEqual(namespaces["backend"].GetProperty("ipv4Cidr").GetString(), namespaces["default"].GetProperty("ipv4Cidr").GetString());
        Assert.True(InPrefix(Assert.Single(backend.Instances()).GetProperty("ip4").GetString()!, namespaces["backend"].GetProperty("ipv4Cidr").GetString()!));

        var dns = vpc.GetProperty("dns").EnumerateArray().ToDictionary(r => r.GetProperty("qualifiedName").GetString()!);
        Assert.Equal(["api.backend", "web.default"], dns.Keys.Order());
        Assert.Equal("web", dns["web.default"].GetProperty("name").GetString());
        Assert.Equal(web.Instances().Select(i => i.GetProperty("ip4").GetString()).Order(),
            dns["web.default"].GetProperty("ip4").EnumerateArray().Select(x => x.GetString()).Order());
        Assert.Equal(Assert.Single(backend.Instances()).GetProperty("ip6").GetString(), Assert.Single(dns["api.backend"].GetProperty("ip6").EnumerateArray()).GetString());
        await tenant.DeletePodsAsync();
    }

    [Fact]
    public async Task peer_sets_follow_pods_as_they_are_created_moved_and_deleted()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var pod = await tenant.WaitForPodAsync((await tenant.CreatePodAsync("meshed", replicas: 2, zone: "fsn1-a")).Id(), "RUNNING");
        await MeshAgreesAsync(tenant, pod);

        // Move one replica: its host is drained, the replica runs elsewhere, and both old and new hosts' peers change.
        var moved = pod.Instances()[0];
        await app.DrainAsync(moved.HostId());
        try
        {
            var after = await tenant.WaitForPodAsync(pod.Id(),
                p => p.State() == "RUNNING" && p.Instances().All(i => i.HostId() != moved.HostId()), MeshWait, "the replica moved");
            await MeshAgreesAsync(tenant, after, gone: moved);
        }
        finally
        {
            await app.UncordonAsync(moved.HostId());
        }

        var last = (await tenant.PodAsync(pod.Id()))!.Value;
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = pod.Id() })).ShouldSucceed();
        await tenant.WaitForPodAsync(pod.Id(), "STOPPED");
        var addresses = last.Instances().SelectMany(i => i.Addresses()).ToHashSet();
        foreach (var agent in app.Agents.All)
            await Eventually.Until(async () => (await app.PeerSetAsync(agent.Id.ToString())) is not { } set || !AllowedIps(set).Overlaps(addresses),
                MeshWait, $"{agent.Name} no longer lets the deleted pod's addresses in");
        Assert.Empty((await tenant.VpcAsync()).GetProperty("peers").EnumerateArray());
    }

    /// <summary>
    /// Every host that runs a replica knows every other such host by its public key, lets in exactly the tenant's
    /// addresses there, has applied that set, and its rendered wg-quick configuration says the same.
    /// </summary>
    private async Task MeshAgreesAsync(TenantScope tenant, JsonElement pod, JsonElement? gone = null)
    {
        var vms = pod.Instances();
        var tenantAddresses = vms.SelectMany(v => v.Addresses()).ToHashSet();
        foreach (var vm in vms)
        {
            var others = vms.Where(v => v.HostId() != vm.HostId()).ToList();
            var set = await Eventually.Get(() => app.PeerSetAsync(vm.HostId()), s => s is { } x && others.All(o =>
                    Peer(x, o.HostId()) is { } p && AllowedIps(p).Intersect(tenantAddresses).ToHashSet().SetEquals(o.Addresses()))
                && (gone is null || Peer(x, gone.Value.HostId()) is not { } old || !AllowedIps(old).Overlaps(gone.Value.Addresses())),
                MeshWait, $"the peer set of {vm.HostId()} lists the pod's other replicas");
            var revision = set!.Value.GetProperty("revision").GetInt32();
            await Eventually.Until(async () => (await app.PeerSetAsync(vm.HostId()))!.Value.GetProperty("appliedRevision").GetInt32() >= revision,
                MeshWait, "the host applied its peer set");

            var device = (Kraud.HostRuntime.Network.SimulatedWireGuardDevice)app.Agent(vm.HostId()).WireGuard.Device;
            foreach (var other in others)
            {
                var key = app.Agent(other.HostId()).WireGuard.Keys.PublicKey;
                Assert.Equal(key, Peer(set.Value, other.HostId())!.Value.GetProperty("publicKey").GetString());
                await Eventually.Until(() => Task.FromResult(device.Configuration is { } config && config.Contains($"PublicKey = {key}") &&
                    other.Addresses().All(config.Contains)), MeshWait, $"the wg-quick configuration of {vm.HostId()} names the peer and its addresses");
            }
        }
        var vpcPeers = (await tenant.VpcAsync()).GetProperty("peers").EnumerateArray().ToList();
        Assert.Equal(vms.Select(v => v.HostId()).Distinct().Order(), vpcPeers.Select(p => p.GetProperty("hostId").GetString()!).Order());
    }

    private static JsonElement? Peer(JsonElement set, string hostId) =>
        set.GetProperty("peers").EnumerateArray().Where(p => p.GetProperty("hostId").GetString() == hostId).Cast<JsonElement?>().FirstOrDefault();

    private static HashSet<string> AllowedIps(JsonElement setOrPeer) => setOrPeer.TryGetProperty("peers", out var peers)
        ? peers.EnumerateArray().SelectMany(p => p.GetProperty("allowedIps").EnumerateArray().Select(a => a.GetString()!)).ToHashSet()
        : setOrPeer.GetProperty("allowedIps").EnumerateArray().Select(a => a.GetString()!).ToHashSet();

    private static bool InPrefix(string address, string cidr) => IPNetwork.Parse(cidr).Contains(IPAddress.Parse(address));
}
