using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Kraud.Domain.Kubernetes;
using Kraud.Tests.Infrastructure;

namespace Kraud.Tests.Api;

/// <summary>Managed Kubernetes: a cluster is a control-plane pod of three microVMs and a pod per node pool, with a PKI of its own.</summary>
[Collection(ApiCollection.Name)]
public class KubernetesSpecs(KraudApp app)
{
    private const string PodFields = "id name namespace state reason replicas owner { kind id name } instances { id hostId state }";
    private const string Fields = $"id name tenantId version controlPlaneZone state reason caCertificate revision createdAt controlPlane {{ {PodFields} }} nodePools {{ name nodes cpu memoryMiB pod {{ {PodFields} }} }}";
    private const string Create = $"mutation($n: String!, $v: String!, $z: String!, $p: [NodePoolInput!]!) {{ createKubernetesCluster(name: $n, version: $v, controlPlaneZone: $z, nodePools: $p) {{ {Fields} }} }}";

    private static object Workers(int nodes = 2) => new[] { new { name = "workers", nodes, cpu = 2, memoryMiB = 2048 } };

    private static Task<GqlResponse> CreateCluster(TenantScope tenant, string name = "prod", string version = "1.34", string zone = "fsn1-a", object? pools = null) =>
        tenant.Gql(Create, new { n = name, v = version, z = zone, p = pools ?? Workers() });

    private static async Task<JsonElement> Cluster(TenantScope tenant, string id) =>
        (await tenant.Gql($"query($id: ID!) {{ kubernetesCluster(id: $id) {{ {Fields} }} }}", new { id })).ShouldSucceed().Data.GetProperty("kubernetesCluster");

    private static Task<JsonElement> WaitFor(TenantScope tenant, string id, Func<JsonElement, bool> done, string what, int seconds = 45) =>
        Eventually.Get(() => Cluster(tenant, id), done, TimeSpan.FromSeconds(seconds), what);

    private static IEnumerable<string> Hosts(JsonElement pod) => pod.Instances().Select(i => i.GetProperty("hostId").GetString()!);

    [Fact]
    public async Task a_cluster_runs_three_control_plane_microvms_on_distinct_hosts_of_its_zone_and_a_microvm_per_worker_node()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var created = (await CreateCluster(tenant)).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        Assert.Equal("PROVISIONING", created.State());
        Assert.Equal("1.34", created.GetProperty("version").GetString());

        var running = await WaitFor(tenant, created.Id(), c => c.State() == "RUNNING", "the cluster runs");
        var controlPlane = running.GetProperty("controlPlane");
        Assert.Equal(3, controlPlane.Instances().Count);
        Assert.Equal(3, Hosts(controlPlane).Distinct().Count());
        Assert.All(Hosts(controlPlane), h => Assert.Equal("fsn1-a", app.Agent(h).Definition.Zone));
        Assert.Equal("k8s-prod", controlPlane.GetProperty("namespace").GetString());
        var owner = controlPlane.GetProperty("owner");
        Assert.Equal(("kubernetes cluster", created.Id()), (owner.GetProperty("kind").GetString(), owner.GetProperty("id").GetString()));
        var pool = Assert.Single(running.GetProperty("nodePools").EnumerateArray());
        Assert.Equal(2, pool.GetProperty("pod").Instances().Count);
        Assert.All(Hosts(pool.GetProperty("pod")), h => Assert.Equal("fsn1-a", app.Agent(h).Definition.Zone));

        // Its pods are the tenant's pods too, listed in the cluster's namespace.
        var pods = (await tenant.Gql("{ pods(namespace: \"k8s-prod\") { nodes { name } } }")).ShouldSucceed().Data.GetProperty("pods").GetProperty("nodes");
        Assert.Equal(["control-plane", "pool-workers"], pods.EnumerateArray().Select(p => p.GetProperty("name").GetString()).Order());
    }

    [Fact]
    public async Task the_kubeconfig_is_for_the_tenants_admins_only_and_holds_a_client_certificate_signed_by_the_cluster_ca()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var cluster = (await CreateCluster(tenant)).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        const string query = "query($id: ID!) { kubeconfig(clusterId: $id) }";

        var member = await tenant.TokenAsync("MEMBER");
        (await app.Host.GraphQL(member, query, new { id = cluster.Id() })).ShouldFailWith("FORBIDDEN");
        (await app.AsOperator(query, new { id = cluster.Id() })).ShouldFailWith("FORBIDDEN");
        var stranger = await TenantScope.CreateAsync(app);
        (await stranger.Gql(query, new { id = cluster.Id() })).ShouldFailWith("NOT_FOUND");

        var yaml = (await tenant.Gql(query, new { id = cluster.Id() })).ShouldSucceed().Data.GetProperty("kubeconfig").GetString()!;
        Assert.Contains("kind: Config", yaml);
        string Field(string name) => Encoding.UTF8.GetString(Convert.FromBase64String(
            yaml.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith(name + ": ", StringComparison.Ordinal))[(name.Length + 2)..]));
        using var ca = X509Certificate2.CreateFromPem(Field("certificate-authority-data"));
        Assert.Equal(cluster.GetProperty("caCertificate").GetString()!.Trim(), Field("certificate-authority-data").Trim());
        using var client = X509Certificate2.CreateFromPem(Field("client-certificate-data"), Field("client-key-data"));
        Assert.True(client.HasPrivateKey);
        Assert.Contains("O=system:masters", client.Subject);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        Assert.True(chain.Build(client), string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));

        var issued = Assert.Single((await app.EventsOf(Guid.Parse(cluster.Id()))).Select(e => e.Data).OfType<KubeconfigIssued>());
        Assert.Equal(client.SerialNumber, issued.SerialNumber);
        Assert.DoesNotContain("PRIVATE KEY", JsonSerializer.Serialize((await app.EventsOf(Guid.Parse(cluster.Id()))).Select(e => e.Data).ToList<object>()));
    }

    [Fact]
    public async Task scaling_a_node_pool_changes_its_worker_microvms_and_the_clusters_pods_refuse_direct_changes()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var cluster = (await CreateCluster(tenant, pools: Workers(1))).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        await WaitFor(tenant, cluster.Id(), c => c.State() == "RUNNING", "the cluster runs");

        var scaled = (await tenant.Gql($"mutation($id: ID!) {{ scaleNodePool(clusterId: $id, pool: \"workers\", nodes: 3, expectedRevision: 1) {{ {Fields} }} }}",
            new { id = cluster.Id() })).ShouldSucceed().Data.GetProperty("scaleNodePool");
        Assert.Equal(3, scaled.GetProperty("nodePools")[0].GetProperty("nodes").GetInt32());
        var grown = await WaitFor(tenant, cluster.Id(), c => c.State() == "RUNNING" && c.GetProperty("nodePools")[0].GetProperty("pod").Instances().Count == 3,
            "three workers run");
        Assert.Equal(3, Hosts(grown.GetProperty("nodePools")[0].GetProperty("pod")).Distinct().Count());

        (await tenant.Gql("mutation($id: ID!) { scaleNodePool(clusterId: $id, pool: \"workers\", nodes: 2, expectedRevision: 1) { id } }", new { id = cluster.Id() }))
            .ShouldFailWith("CONFLICT");
        (await tenant.Gql("mutation($id: ID!) { scaleNodePool(clusterId: $id, pool: \"gpu\", nodes: 2) { id } }", new { id = cluster.Id() }))
            .ShouldFailWith("NOT_FOUND");
        var poolPod = grown.GetProperty("nodePools")[0].GetProperty("pod").Id();
        var refused = (await tenant.Gql("mutation($id: ID!) { scalePod(id: $id, replicas: 1) { id } }", new { id = poolPod })).ShouldFailWith("PRECONDITION");
        Assert.Contains("change it through the kubernetes cluster", refused.FirstErrorMessage);
        (await tenant.Gql("mutation($id: ID!) { deletePod(id: $id) { id } }", new { id = grown.GetProperty("controlPlane").Id() })).ShouldFailWith("PRECONDITION");
    }

    [Fact]
    public async Task a_control_plane_microvm_whose_host_fails_is_replaced_on_another_host_of_the_zone()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var cluster = (await CreateCluster(tenant, name: "ha")).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        var running = await WaitFor(tenant, cluster.Id(), c => c.State() == "RUNNING", "the cluster runs");
        var victim = Hosts(running.GetProperty("controlPlane")).First(h => !app.Agent(h).Definition.SevSnp);
        app.Agent(victim).PowerOff();
        try
        {
            var healed = await WaitFor(tenant, cluster.Id(), c => c.State() == "RUNNING" && !Hosts(c.GetProperty("controlPlane")).Contains(victim),
                "the control plane runs again without the failed host", seconds: app.HeartbeatTimeoutSeconds + 40);
            var hosts = Hosts(healed.GetProperty("controlPlane")).ToList();
            Assert.Equal(3, hosts.Distinct().Count());
            Assert.All(hosts, h => Assert.Equal("fsn1-a", app.Agent(h).Definition.Zone));
        }
        finally
        {
            app.Agent(victim).PowerOn();
            await app.WaitForHostStateAsync(victim, "READY", TimeSpan.FromSeconds(30), "the host recovered");
        }
    }

    [Theory]
    [InlineData("prod", "1.20", "fsn1-a", "version '1.20' is not offered")]
    [InlineData("prod", "1.34", "nowhere", "controlPlaneZone 'nowhere' is not a zone")]
    [InlineData("Prod", "1.34", "fsn1-a", "name 'Prod'")]
    public async Task a_cluster_with_invalid_input_is_refused_and_nothing_is_appended(string name, string version, string zone, string message)
    {
        var tenant = await TenantScope.CreateAsync(app);
        var before = await tenant.EventCountAsync();
        var refused = (await CreateCluster(tenant, name, version, zone)).ShouldFailWith("VALIDATION");
        Assert.Contains(message, refused.FirstErrorMessage);
        (await CreateCluster(tenant, pools: Array.Empty<object>())).ShouldFailWith("VALIDATION");
        (await CreateCluster(tenant, pools: new[] { new { name = "a", nodes = 1, cpu = 1, memoryMiB = 1024 }, new { name = "a", nodes = 1, cpu = 1, memoryMiB = 1024 } }))
            .ShouldFailWith("VALIDATION");
        Assert.Equal(before, await tenant.EventCountAsync());
    }

    [Fact]
    public async Task cluster_names_are_unique_per_tenant_and_clusters_are_invisible_to_other_tenants()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var cluster = (await CreateCluster(tenant, name: "mine")).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        (await CreateCluster(tenant, name: "mine")).ShouldFailWith("CONFLICT");

        var other = await TenantScope.CreateAsync(app);
        Assert.Empty((await other.Gql("{ kubernetesClusters { id } }")).ShouldSucceed().Data.GetProperty("kubernetesClusters").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, (await other.Gql("query($id: ID!) { kubernetesCluster(id: $id) { id } }", new { id = cluster.Id() }))
            .ShouldSucceed().Data.GetProperty("kubernetesCluster").ValueKind);
        (await other.Gql("mutation($id: ID!) { scaleNodePool(clusterId: $id, pool: \"workers\", nodes: 1) { id } }", new { id = cluster.Id() })).ShouldFailWith("NOT_FOUND");
        (await other.Gql("mutation($id: ID!) { deleteKubernetesCluster(id: $id) { id } }", new { id = cluster.Id() })).ShouldFailWith("NOT_FOUND");
        (await CreateCluster(other, name: "mine")).ShouldSucceed();
        Assert.Single((await tenant.Gql("{ kubernetesClusters { id } }")).ShouldSucceed().Data.GetProperty("kubernetesClusters").EnumerateArray());
    }

    [Fact]
    public async Task deleting_a_cluster_stops_every_microvm_it_had()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var cluster = (await CreateCluster(tenant, name: "gone")).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        await WaitFor(tenant, cluster.Id(), c => c.State() == "RUNNING", "the cluster runs");
        var deleting = (await tenant.Gql($"mutation($id: ID!) {{ deleteKubernetesCluster(id: $id) {{ {Fields} }} }}", new { id = cluster.Id() }))
            .ShouldSucceed().Data.GetProperty("deleteKubernetesCluster");
        Assert.Equal("DELETING", deleting.State());
        var deleted = await WaitFor(tenant, cluster.Id(), c => c.State() == "DELETED", "the cluster is deleted");
        Assert.Empty(deleted.GetProperty("controlPlane").Instances());
        Assert.Equal("STOPPED", deleted.GetProperty("nodePools")[0].GetProperty("pod").State());
        (await tenant.Gql("query($id: ID!) { kubeconfig(clusterId: $id) }", new { id = cluster.Id() })).ShouldFailWith("NOT_FOUND");
    }

    [Fact]
    public async Task the_compliance_report_counts_a_clusters_pods_as_managed_kubernetes()
    {
        var tenant = await TenantScope.CreateAsync(app);
        var cluster = (await CreateCluster(tenant, name: "audited")).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        var auditor = await tenant.TokenAsync("AUDITOR");
        var result = await app.Host.Scenario(s =>
        {
            s.Get.Url("/api/exports/compliance-report?format=json");
            s.WithRequestHeader("Authorization", $"Bearer {auditor}");
            s.StatusCodeShouldBe(200);
        });
        var resources = JsonDocument.Parse(await result.ReadAsTextAsync()).RootElement.GetProperty("tenants")[0].GetProperty("resources").EnumerateArray()
            .ToDictionary(r => r.GetProperty("id").GetString()!);
        var controlPlane = resources[cluster.GetProperty("controlPlane").Id()];
        Assert.Equal(("Managed Kubernetes", "N+2 in 1 zone"), (controlPlane.GetProperty("product").GetString(), controlPlane.GetProperty("redundancy").GetString()));
    }
}
