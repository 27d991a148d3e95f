using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Kraud.Domain.KubernetesApi;
using Kraud.Tests.Infrastructure;
using Marten;
using Npgsql;

namespace Kraud.Tests.Api;

/// <summary>
/// A cluster's Kubernetes API refuses what it must (other clusters' certificates, revoked ones, other tenants' tokens,
/// malformed manifests) as kubectl expects, and keeps ConfigMaps and Secrets (a Secret's values never in an event).
/// </summary>
[Collection(ApiCollection.Name)]
public class KubernetesApiSpecs(KraudApp app)
{
    private static string Field(string kubeconfig, string name) =>
        kubeconfig.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith(name + ": ", StringComparison.Ordinal))[(name.Length + 2)..];

    private static string ReplaceField(string kubeconfig, string name, string value) =>
        kubeconfig.Replace($"{name}: {Field(kubeconfig, name)}", $"{name}: {value}", StringComparison.Ordinal);

    /// <summary>The kubeconfig with a bearer token in place of its client certificate.</summary>
    private static string WithToken(string kubeconfig, string token)
    {
        var users = kubeconfig.IndexOf("users:", StringComparison.Ordinal);
        var contexts = kubeconfig.IndexOf("contexts:", StringComparison.Ordinal);
        return kubeconfig[..users] + $"users:\n- name: {Field(kubeconfig, "user")}\n  user:\n    token: {token}\n" + kubeconfig[contexts..];
    }

    private static async Task<string> KubeconfigAsync(TenantScope tenant, string clusterId) =>
        (await tenant.Gql("query($id: ID!) { kubeconfig(clusterId: $id) }", new { id = clusterId })).ShouldSucceed().Data.GetProperty("kubeconfig").GetString()!;

    private static void ShouldBeUnauthorized(KubectlResult result)
    {
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("You must be logged in to the server", result.Error);
    }

    [Fact]
    public async Task a_client_certificate_of_another_clusters_ca_or_a_revoked_one_is_refused_with_401()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        var (tenant, clusterId, kubectl) = (cluster.Tenant, cluster.Id, cluster.Kubectl);
        (await kubectl.RunAsync("get", "namespaces")).ShouldSucceed();

        var other = (await tenant.Gql("""
            mutation { createKubernetesCluster(name: "other", version: "1.33", controlPlaneZone: "fsn1-b", nodePools: [{name: "w", nodes: 1, cpu: 1, memoryMiB: 1024}]) { id } }
            """)).ShouldSucceed().Data.GetProperty("createKubernetesCluster").GetProperty("id").GetString()!;
        var otherConfig = await KubeconfigAsync(tenant, other);
        var mine = File.ReadAllText(kubectl.KubeconfigPath);
        // The other cluster's client certificate and key, against this cluster's address and CA.
        var crossed = ReplaceField(ReplaceField(mine, "client-certificate-data", Field(otherConfig, "client-certificate-data")),
            "client-key-data", Field(otherConfig, "client-key-data"));
        using (var foreign = new Kubectl(crossed)) ShouldBeUnauthorized(await foreign.RunAsync("get", "namespaces"));

        // Revoked: this kubeconfig's certificate stops working, a fresh one still works.
        using var certificate = X509Certificate2.CreateFromPem(Encoding.UTF8.GetString(Convert.FromBase64String(Field(mine, "client-certificate-data"))));
        (await tenant.Gql("mutation($c: ID!, $s: String!) { revokeKubeconfig(clusterId: $c, serialNumber: $s) { id } }",
            new { c = clusterId, s = certificate.SerialNumber })).ShouldSucceed();
        ShouldBeUnauthorized(await kubectl.RunAsync("get", "namespaces"));
        using var fresh = new Kubectl(await KubeconfigAsync(tenant, clusterId));
        (await fresh.RunAsync("get", "namespaces")).ShouldSucceed();
    }

    [Fact]
    public async Task another_tenants_token_gets_401_and_a_member_reads_but_an_auditor_cannot_write()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        var (tenant, kubectl) = (cluster.Tenant, cluster.Kubectl);
        var file = kubectl.WriteFile("shop.yaml", KubectlSpecs.Manifest);
        (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed();
        var kubeconfig = File.ReadAllText(kubectl.KubeconfigPath);

        var stranger = await TenantScope.CreateAsync(app);
        foreach (var role in new[] { "ADMIN", "MEMBER" })
        {
            using var theirs = new Kubectl(WithToken(kubeconfig, role == "ADMIN" ? stranger.Token : await stranger.TokenAsync(role)));
            ShouldBeUnauthorized(await theirs.RunAsync("get", "deployments", "-A"));
        }

        using var member = new Kubectl(WithToken(kubeconfig, await tenant.TokenAsync("MEMBER")));
        var listed = (await member.RunAsync("get", "deployments", "-n", "shop", "-o", "json")).ShouldSucceed().Json();
        Assert.Equal("web", Assert.Single(listed.GetProperty("items").EnumerateArray()).GetProperty("metadata").GetProperty("name").GetString());

        using var auditor = new Kubectl(WithToken(kubeconfig, await tenant.TokenAsync("AUDITOR")));
        var refused = await auditor.RunAsync("scale", "deployment/web", "-n", "shop", "--replicas=1");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Forbidden", refused.Error);
    }

    [Fact]
    public async Task a_malformed_manifest_is_refused_with_422_and_appends_nothing()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        var (clusterId, kubectl) = (cluster.Id, cluster.Kubectl);
        var file = kubectl.WriteFile("bad.yaml", """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
              namespace: default
            spec:
              replicas: 2
              selector:
                matchLabels: {app: web}
              template:
                metadata:
                  labels: {app: other}
                spec:
                  containers: []
            """);
        var refused = await kubectl.RunAsync("apply", "-f", file);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("is invalid", refused.Error);
        Assert.Contains("selector", refused.Error);

        var key = new KubeObjectKey(Guid.Parse(clusterId), "Deployment", "default", "web");
        await using var session = app.Store.QuerySession();
        Assert.Empty(await session.Events.FetchStreamAsync(key.StreamId));
        var bad = await kubectl.RunAsync("get", "deployment", "web", "-n", "default");
        Assert.Contains("NotFound", bad.Error);

        // A name Kubernetes would refuse is refused the same way (422, Invalid), before anything is written.
        var named = kubectl.WriteFile("named.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name, namespace: default}\ndata: {a: b}\n");
        var invalid = await kubectl.RunAsync("apply", "-f", named);
        Assert.NotEqual(0, invalid.ExitCode);
        Assert.Contains("Invalid", invalid.Error + invalid.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(await session.Events.FetchStreamAsync(new KubeObjectKey(Guid.Parse(clusterId), "ConfigMap", "default", "Not_A_Name").StreamId));
    }

    private async Task<IReadOnlyList<long>> StreamVersionsAsync(string clusterId, params (string Kind, string Name)[] objects)
    {
        await using var session = app.Store.QuerySession();
        var versions = new List<long>();
        foreach (var (kind, name) in objects)
            versions.Add((await session.Events.FetchStreamStateAsync(new KubeObjectKey(Guid.Parse(clusterId), kind, "default", name).StreamId))!.Version);
        return versions;
    }

    [Fact]
    public async Task configmaps_and_secrets_are_served_and_a_secrets_values_are_in_no_event()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        var (clusterId, kubectl) = (cluster.Id, cluster.Kubectl);
        const string password = "s3cr3t-never-in-an-event";
        var file = kubectl.WriteFile("config.yaml", """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings, namespace: default}
            data: {GREETING: hello}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: db, namespace: default}
            type: Opaque
            stringData: {PASSWORD: PASSWORD_VALUE}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: api, namespace: default}
            spec:
              replicas: 1
              selector: {matchLabels: {app: api}}
              template:
                metadata: {labels: {app: api}}
                spec:
                  containers:
                  - name: api
                    image: ghcr.io/acme/api:1.0
                    envFrom: [{configMapRef: {name: settings}}]
                    env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: PASSWORD}}}]
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: api, namespace: default}
            spec:
              selector: {app: api}
              ports: [{port: 80, targetPort: 8080}]
            """.Replace("PASSWORD_VALUE", password, StringComparison.Ordinal));
        var applied = (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed().Output;
        Assert.Contains("configmap/settings created", applied);
        Assert.Contains("secret/db created", applied);
        Assert.Contains("service/api created", applied);
        var versions = await StreamVersionsAsync(clusterId, ("ConfigMap", "settings"), ("Secret", "db"), ("Deployment", "api"), ("Service", "api"));
        var again = (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed().Output;
        Assert.Contains("configmap/settings unchanged", again);
        Assert.Contains("deployment.apps/api unchanged", again);
        Assert.Contains("service/api unchanged", again);
        // kubectl says "secret/db configured" again, as it does with any API server: stringData is write-only, so its
        // three-way patch always carries it. The values are the same, and nothing is appended.
        Assert.Equal(versions, await StreamVersionsAsync(clusterId, ("ConfigMap", "settings"), ("Secret", "db"), ("Deployment", "api"), ("Service", "api")));

        var secret = (await kubectl.RunAsync("get", "secret", "db", "-o", "json")).ShouldSucceed().Json();
        Assert.Equal(password, Encoding.UTF8.GetString(Convert.FromBase64String(secret.GetProperty("data").GetProperty("PASSWORD").GetString()!)));
        var config = (await kubectl.RunAsync("get", "configmap", "settings", "-o", "json")).ShouldSucceed().Json();
        Assert.Equal("hello", config.GetProperty("data").GetProperty("GREETING").GetString());
        Assert.Contains("api", (await kubectl.RunAsync("get", "services")).ShouldSucceed().Output);
        (await kubectl.RunAsync("rollout", "status", "deployment/api", "--timeout=60s")).ShouldSucceed();

        // Nothing of the cluster's in the event log holds the secret in clear (nor its base64).
        await using var session = app.Store.QuerySession();
        var events = await session.Events.QueryAllRawEvents().Where(e => e.Timestamp > DateTimeOffset.UtcNow.AddMinutes(-5)).ToListAsync();
        var text = string.Join('\n', events.Select(e => JsonSerializer.Serialize(e.Data, e.Data.GetType())));
        Assert.Contains(clusterId, text);
        Assert.DoesNotContain(password, text);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(password)), text);
    }

    [Fact]
    public async Task the_official_csharp_client_creates_replaces_scales_and_deletes_and_a_stale_update_gets_409()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubectl.KubeconfigPath));
        Assert.Contains((await client.CoreV1.ListNamespaceAsync()).Items, n => n.Metadata.Name == "default");

        var created = await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment("api", "nginx:1.27"), "default");
        Assert.NotNull(created.Metadata.Uid);

        // A read, then another writer's change, then a replace of what was read: 409, nothing appended.
        var read = await client.AppsV1.ReadNamespacedDeploymentAsync("api", "default");
        await client.AppsV1.PatchNamespacedDeploymentAsync(new V1Patch("""{"metadata":{"labels":{"team":"payments"}}}""", V1Patch.PatchType.MergePatch),
            "api", "default");
        read.Spec.Replicas = 3;
        var stale = await Assert.ThrowsAsync<HttpOperationException>(() => client.AppsV1.ReplaceNamespacedDeploymentAsync(read, "api", "default"));
        Assert.Equal(System.Net.HttpStatusCode.Conflict, stale.Response.StatusCode);
        Assert.Equal(1, (await client.AppsV1.ReadNamespacedDeploymentAsync("api", "default")).Spec.Replicas);

        // The scale subresource, as client libraries and autoscalers use it.
        await client.AppsV1.PatchNamespacedDeploymentScaleAsync(new V1Patch("""{"spec":{"replicas":2}}""", V1Patch.PatchType.MergePatch), "api", "default");
        var scaled = await Eventually.Get(() => client.AppsV1.ReadNamespacedDeploymentAsync("api", "default"),
            d => d.Status?.ReadyReplicas == 2, TimeSpan.FromSeconds(60), "2 replicas are ready");
        Assert.Equal("payments", scaled.Metadata.Labels["team"]);

        await client.AppsV1.DeleteNamespacedDeploymentAsync("api", "default");
        var gone = await Assert.ThrowsAsync<HttpOperationException>(() => client.AppsV1.ReadNamespacedDeploymentAsync("api", "default"));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, gone.Response.StatusCode);
    }

    [Fact]
    public async Task a_watch_from_a_lists_resource_version_sends_what_was_deleted_or_added_before_its_first_look()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(cluster.Kubectl.KubeconfigPath));
        await client.AppsV1.CreateNamespacedDeploymentAsync(Deployment("gone", "nginx:1.27"), "default");
        // The versions of lists that show the pod and the Deployment: a watch from them owes their deletion.
        var listed = await Eventually.Get(() => client.CoreV1.ListNamespacedPodAsync("default"), l => l.Items.Count == 1 && l.Items[0].Status.Phase == "Running",
            TimeSpan.FromSeconds(60), "the Deployment's pod runs");
        var (pod, pods) = (listed.Items[0].Metadata.Name, listed.Metadata.ResourceVersion);
        var deployments = (await Eventually.Get(() => client.AppsV1.ListNamespacedDeploymentAsync("default"), l => l.Items.Count == 1,
            TimeSpan.FromSeconds(60), "the Deployment is listed")).Metadata.ResourceVersion;
        var configMaps = (await client.CoreV1.ListNamespacedConfigMapAsync("default")).Metadata.ResourceVersion;

        // All of it happens after the lists and before any watch looks: a pod (its microVM replaced), the Deployment, a new ConfigMap.
        await client.CoreV1.DeleteNamespacedPodAsync(pod, "default");
        await Eventually.Until(async () => (await client.CoreV1.ListNamespacedPodAsync("default")).Items.All(p => p.Metadata.Name != pod),
            TimeSpan.FromSeconds(60), "the deleted pod's microVM is gone");
        await client.AppsV1.DeleteNamespacedDeploymentAsync("gone", "default");
        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "late" }, Data = new Dictionary<string, string> { ["k"] = "v" } }, "default");

        Assert.Contains(("DELETED", pod), await WatchAsync(cluster, "/api/v1/namespaces/default/pods", pods));
        Assert.Equal([("DELETED", "gone")], await WatchAsync(cluster, "/apis/apps/v1/namespaces/default/deployments", deployments));
        Assert.Equal([("ADDED", "late")], await WatchAsync(cluster, "/api/v1/namespaces/default/configmaps", configMaps));
    }

    [Fact]
    public async Task a_lists_resource_version_stops_before_an_event_number_a_transaction_still_holds()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(cluster.Kubectl.KubeconfigPath));
        // A writer that has taken its sequence number and not committed: later writers' events become visible before its own.
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        var held = await connection.BeginTransactionAsync();
        var taken = await connection.ScalarAsync("select nextval('kraud.mt_events_sequence')");
        var created = await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "after" } }, "default");
        Assert.True(long.Parse(created.Metadata.ResourceVersion, CultureInfo.InvariantCulture) > taken);

        var listed = long.Parse((await client.CoreV1.ListNamespacedConfigMapAsync("default")).Metadata.ResourceVersion, CultureInfo.InvariantCulture);
        Assert.True(listed < taken, $"a list while {taken} is held says {listed}");

        // Rolled back, the number never comes: the list's version passes it once no transaction can still fill it.
        await held.RollbackAsync();
        await Eventually.Until(async () => long.Parse((await client.CoreV1.ListNamespacedConfigMapAsync("default")).Metadata.ResourceVersion, CultureInfo.InvariantCulture) > taken,
            TimeSpan.FromSeconds(60), $"the list's version passes the rolled-back {taken}");
    }

    [Fact]
    public async Task a_list_while_a_transaction_holds_an_earlier_event_number_shows_the_cluster_as_of_its_resource_version()
    {
        await using var cluster = await KubectlSpecs.ClusterAsync(app);
        using var client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(cluster.Kubectl.KubeconfigPath));
        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "before" } }, "default");
        // Once a list has passed "before" no later list goes back before it (a number a transaction may still fill is never passed).
        await Eventually.Get(() => client.CoreV1.ListNamespacedConfigMapAsync("default"), l => l.Items.Count == 1, TimeSpan.FromSeconds(60), "a list shows \"before\"");
        await using var connection = new NpgsqlConnection(app.ConnectionString);
        await connection.OpenAsync();
        var held = await connection.BeginTransactionAsync();
        var taken = await connection.ScalarAsync("select nextval('kraud.mt_events_sequence')");
        // Committed after the held number: a watch from a version below it (the list's) sends it as ADDED, so the list must not show it.
        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "after" } }, "default");

        var list = await client.CoreV1.ListNamespacedConfigMapAsync("default");
        var version = long.Parse(list.Metadata.ResourceVersion, CultureInfo.InvariantCulture);
        Assert.True(version < taken, $"a list while {taken} is held says {version}");
        Assert.Equal(["before"], list.Items.Select(i => i.Metadata.Name));
        Assert.All(list.Items, i => Assert.True(long.Parse(i.Metadata.ResourceVersion, CultureInfo.InvariantCulture) <= version));
        Assert.Equal([("ADDED", "after")], await WatchAsync(cluster, "/api/v1/namespaces/default/configmaps", list.Metadata.ResourceVersion));
        await held.RollbackAsync();
    }

    private static V1Deployment Deployment(string name, string image)
    {
        var labels = new Dictionary<string, string> { ["app"] = name };
        return new V1Deployment
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "default" },
            Spec = new V1DeploymentSpec
            {
                Replicas = 1, Selector = new V1LabelSelector { MatchLabels = labels },
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta { Labels = labels },
                    Spec = new V1PodSpec { Containers = [new V1Container { Name = name, Image = image }] },
                },
            },
        };
    }

    /// <summary>The (type, name) of every event a watch from a resourceVersion sends in its first seconds.</summary>
    private static async Task<List<(string Type, string Name)>> WatchAsync(KubeCluster cluster, string path, string resourceVersion)
    {
        // --raw takes the path from the server's root: the cluster's API lives under /clusters/<id>.
        var stream = (await cluster.Kubectl.RunAsync("get", "--raw", $"/clusters/{cluster.Id}{path}?watch=1&resourceVersion={resourceVersion}&timeoutSeconds=3")).ShouldSucceed().Output;
        return stream.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement)
            .Select(e => (e.GetProperty("type").GetString()!, e.GetProperty("object").GetProperty("metadata").GetProperty("name").GetString()!)).ToList();
    }
}
