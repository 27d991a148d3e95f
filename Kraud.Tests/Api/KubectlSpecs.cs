using System.Globalization;
using System.Text.Json;
using Kraud.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kraud.Tests.Api;

/// <summary>
/// Managed Kubernetes through the real kubectl: the kubeconfig from Kraud's `kubeconfig` query reaches the cluster's API
/// over HTTPS (a serving certificate under the cluster's CA, the client certificate of the kubeconfig), and manifests run
/// as Kraud pods.
/// </summary>
[Collection(ApiCollection.Name)]
public class KubectlSpecs(KraudApp app)
{
    internal const string Manifest = """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: shop
          labels: {app: web}
        spec:
          replicas: 3
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
              - name: nginx
                image: nginx:1.27
                command: ["nginx", "-g", "daemon off;"]
                env:
                - {name: MODE, value: production}
                resources:
                  limits: {cpu: "1", memory: 256Mi}
        """;

    /// <summary>A cluster of a new tenant's; dispose it (await using) so that its pods give the shared fleet's room back.</summary>
    internal static async Task<KubeCluster> ClusterAsync(KraudApp app)
    {
        var tenant = await TenantScope.CreateAsync(app);
        var cluster = (await tenant.Gql("""
            mutation { createKubernetesCluster(name: "prod", version: "1.32", controlPlaneZone: "fsn1-a",
              nodePools: [{name: "workers", nodes: 3, cpu: 2, memoryMiB: 2048}]) { id apiEndpoint } }
            """)).ShouldSucceed().Data.GetProperty("createKubernetesCluster");
        var id = cluster.GetProperty("id").GetString()!;
        Assert.StartsWith("https://127.0.0.1:", cluster.GetProperty("apiEndpoint").GetString());
        var kubeconfig = (await tenant.Gql("query($id: ID!) { kubeconfig(clusterId: $id) }", new { id })).ShouldSucceed().Data.GetProperty("kubeconfig").GetString()!;
        return new KubeCluster(tenant, id, new Kubectl(kubeconfig));
    }

    private static async Task<JsonElement> WaitForPods(Kubectl kubectl, Func<JsonElement[], bool> done, string what, int seconds = 60) =>
        await Eventually.Get(async () =>
            {
                var pods = (await kubectl.RunAsync("get", "pods", "-n", "shop", "-o", "json")).ShouldSucceed().Json();
                return pods;
            }, p => done([.. p.GetProperty("items").EnumerateArray()]), TimeSpan.FromSeconds(seconds), what);

    private static string Phase(JsonElement pod) => pod.GetProperty("status").GetProperty("phase").GetString()!;

    private static string Image(JsonElement pod) => pod.GetProperty("spec").GetProperty("containers")[0].GetProperty("image").GetString()!;

    private static Task WaitForPodsGone(Kubectl kubectl) => Eventually.Until(async () =>
    {
        var pods = (await kubectl.RunAsync("get", "pods", "-A", "-o", "json")).ShouldSucceed().Json();
        return pods.GetProperty("items").GetArrayLength() == 0;
    }, TimeSpan.FromSeconds(30), "no pod is left");

    [Fact]
    public async Task kubectl_discovers_the_api_applies_a_deployment_scales_it_applies_again_without_change_and_deletes_it()
    {
        await using var cluster = await ClusterAsync(app);
        var kubectl = cluster.Kubectl;

        var version = (await kubectl.RunAsync("version", "-o", "json")).ShouldSucceed().Json();
        Assert.Equal("32", version.GetProperty("serverVersion").GetProperty("minor").GetString());
        var resources = (await kubectl.RunAsync("api-resources")).ShouldSucceed().Output;
        Assert.Contains("deployments", resources);
        Assert.Contains("namespaces", resources);
        var explain = (await kubectl.RunAsync("explain", "deployment.spec.replicas")).ShouldSucceed().Output;
        Assert.Contains("replicas", explain);

        var file = kubectl.WriteFile("shop.yaml", Manifest);
        var applied = (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed().Output;
        Assert.Contains("namespace/shop created", applied);
        Assert.Contains("deployment.apps/web created", applied);

        var running = await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running"), "3 pods run");
        Assert.Equal(3, running.GetProperty("items").EnumerateArray().Select(p => p.GetProperty("spec").GetProperty("nodeName").GetString()).Distinct().Count());
        var wide = (await kubectl.RunAsync("get", "pods", "-n", "shop", "-o", "wide")).ShouldSucceed().Output;
        Assert.Equal(3, wide.Split('\n').Count(l => l.StartsWith("web-", StringComparison.Ordinal) && l.Contains("Running", StringComparison.Ordinal)));
        (await kubectl.RunAsync("rollout", "status", "deployment/web", "-n", "shop", "--timeout=60s")).ShouldSucceed();

        var again = (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed().Output;
        Assert.Contains("namespace/shop unchanged", again);
        Assert.Contains("deployment.apps/web unchanged", again);

        // Four, not five: the product's N+2 rule keeps a pod's replicas on distinct hosts with two spare, and a zone of the
        // test fleet has six compute hosts (a fifth replica stays Pending with the scheduler's reason).
        (await kubectl.RunAsync("scale", "deployment/web", "-n", "shop", "--replicas=4")).ShouldSucceed();
        await WaitForPods(kubectl, p => p.Length == 4 && p.All(x => Phase(x) == "Running"), "4 pods run");
        (await kubectl.RunAsync("rollout", "status", "deployment/web", "-n", "shop", "--timeout=60s")).ShouldSucceed();
        var deployment = (await kubectl.RunAsync("get", "deployment", "web", "-n", "shop", "-o", "json")).ShouldSucceed().Json();
        Assert.Equal(4, deployment.GetProperty("status").GetProperty("readyReplicas").GetInt32());

        // A new image is a new ReplicaSet; the old one is retired once the new one runs every replica.
        (await kubectl.RunAsync("set", "image", "deployment/web", "-n", "shop", "nginx=nginx:1.28")).ShouldSucceed();
        (await kubectl.RunAsync("rollout", "status", "deployment/web", "-n", "shop", "--timeout=90s")).ShouldSucceed();
        var rolled = await WaitForPods(kubectl, p => p.Length == 4 && p.All(x => Phase(x) == "Running" && Image(x) == "nginx:1.28"), "4 pods of the new image run");
        Assert.Single(rolled.GetProperty("items").EnumerateArray().Select(p => p.GetProperty("metadata").GetProperty("labels").GetProperty("pod-template-hash").GetString()).Distinct());
        var sets = (await kubectl.RunAsync("get", "replicasets", "-n", "shop", "-o", "json")).ShouldSucceed().Json().GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(2, sets.Count);
        Assert.Equal([0, 4], sets.Select(r => r.GetProperty("spec").GetProperty("replicas").GetInt32()).Order());
        var described = (await kubectl.RunAsync("describe", "deployment", "web", "-n", "shop")).ShouldSucceed().Output;
        Assert.Contains("nginx:1.28", described);
        Assert.Contains("NewReplicaSetAvailable", described);

        // kubectl deletes in the file's order: the namespace first (Terminating: its contents can still be deleted), then the
        // Deployment. The namespace controller deletes what the namespace holds meanwhile; when it reaches the Deployment
        // before kubectl does, kubectl's delete finds nothing, as against any API server (hence --ignore-not-found).
        // kubectl waits for each object to go (a list, then a watch from the list's resourceVersion).
        var deleted = (await kubectl.RunAsync("delete", "-f", file, "--ignore-not-found", "--timeout=60s")).ShouldSucceed().Output;
        Assert.Contains("namespace \"shop\" deleted", deleted);
        await Eventually.Until(async () => (await kubectl.RunAsync("get", "namespace", "shop")).Error.Contains("NotFound", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), "the namespace is gone");
        Assert.Equal(0, (await kubectl.RunAsync("get", "deployments", "-A", "-o", "json")).ShouldSucceed().Json().GetProperty("items").GetArrayLength());
        await WaitForPodsGone(kubectl);
    }

    private static string Name(JsonElement pod) => pod.GetProperty("metadata").GetProperty("name").GetString()!;

    [Fact]
    public async Task kubectl_logs_prints_what_the_pods_own_microvm_wrote_with_tail_and_timestamps()
    {
        await using var cluster = await ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        (await kubectl.RunAsync("apply", "-f", kubectl.WriteFile("shop.yaml", Manifest))).ShouldSucceed();
        var pods = (await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running"), "3 pods run")).GetProperty("items").EnumerateArray().ToList();
        var (mine, other) = (pods[0], pods[1]);
        static (Guid Pod, Guid Vm, int Replica) Of(JsonElement pod)
        {
            var metadata = pod.GetProperty("metadata");
            var annotations = metadata.GetProperty("annotations");
            return (Guid.Parse(metadata.GetProperty("ownerReferences")[0].GetProperty("uid").GetString()!),
                Guid.Parse(annotations.GetProperty("kraud.cloud/microvm").GetString()!), int.Parse(annotations.GetProperty("kraud.cloud/replica").GetString()!, CultureInfo.InvariantCulture));
        }
        // What the host runtime ships from the guests' workloads: two lines of this pod's microVM, one of another replica's.
        var shipper = app.Host.Services.GetRequiredService<Kraud.HostRuntime.Logs.WorkloadLogShipper>();
        var at = new DateTimeOffset(2026, 12, 6, 3, 12, 0, TimeSpan.Zero);
        var (podId, vm, replica) = Of(mine);
        var (_, otherVm, otherReplica) = Of(other);
        shipper.Enqueue(new Kraud.HostRuntime.Logs.WorkloadLogLine(cluster.Tenant.Id, podId, vm, replica, at, "stdout", "listening on :80"));
        shipper.Enqueue(new Kraud.HostRuntime.Logs.WorkloadLogLine(cluster.Tenant.Id, podId, otherVm, otherReplica, at, "stdout", "another replica"));
        shipper.Enqueue(new Kraud.HostRuntime.Logs.WorkloadLogLine(cluster.Tenant.Id, podId, vm, replica, at.AddSeconds(1), "stderr", "GET / 200"));
        await shipper.FlushAsync(CancellationToken.None);

        var all = (await kubectl.RunAsync("logs", Name(mine), "-n", "shop")).ShouldSucceed().Output;
        Assert.Equal(["listening on :80", "GET / 200"], all.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("GET / 200", (await kubectl.RunAsync("logs", Name(mine), "-n", "shop", "--tail=1")).ShouldSucceed().Output.Trim());
        Assert.Equal("2026-12-06T03:12:01.0000000Z GET / 200",
            (await kubectl.RunAsync("logs", Name(mine), "-n", "shop", "--tail=1", "--timestamps")).ShouldSucceed().Output.Trim());
        Assert.Equal("another replica", (await kubectl.RunAsync("logs", Name(other), "-n", "shop")).ShouldSucceed().Output.Trim());
        Assert.Contains("NotFound", (await kubectl.RunAsync("logs", "web-gone-00000", "-n", "shop")).Error);

        // -f: a line shipped while kubectl follows reaches it (the request's own timeout ends the follow).
        var following = kubectl.RunAsync("logs", Name(mine), "-n", "shop", "-f", "--tail=1", "--request-timeout=8s");
        await Task.Delay(TimeSpan.FromSeconds(3));
        shipper.Enqueue(new Kraud.HostRuntime.Logs.WorkloadLogLine(cluster.Tenant.Id, podId, vm, replica, at.AddSeconds(2), "stdout", "GET /health 200"));
        await shipper.FlushAsync(CancellationToken.None);
        Assert.Equal(["GET / 200", "GET /health 200"], (await following).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task kubectl_delete_pod_replaces_the_replica_with_a_new_pod_as_a_deployment_does()
    {
        await using var cluster = await ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        (await kubectl.RunAsync("apply", "-f", kubectl.WriteFile("shop.yaml", Manifest))).ShouldSucceed();
        var before = (await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running"), "3 pods run")).GetProperty("items").EnumerateArray()
            .Select(Name).ToList();
        var victim = before[1];

        // kubectl returns once the pod is gone (its microVM stopped); the ReplicaSet has made another meanwhile.
        var deleting = await kubectl.RunAsync("delete", "pod", victim, "-n", "shop", "--timeout=60s");
        if (deleting.ExitCode != 0)
        {
            // Seen once in CI: kubectl's wait for the pod to go timed out. Say what the Kraud pod went through meanwhile.
            var current = await WaitForPods(kubectl, _ => true, "the pods are listed");
            var podOf = Guid.Parse(current.GetProperty("items")[0].GetProperty("metadata").GetProperty("ownerReferences")[0].GetProperty("uid").GetString()!);
            var history = (await app.EventsOf(podOf)).Select(e => $"{e.Timestamp:HH:mm:ss.fff} {e.EventTypeName}");
            Assert.Fail($"kubectl delete exited {deleting.ExitCode}: {deleting.Error}{deleting.Output}\nThe pods now: " +
                string.Join(", ", current.GetProperty("items").EnumerateArray().Select(p => $"{Name(p)} {Phase(p)}")) +
                $"\nThe Kraud pod's events: {string.Join("; ", history)}");
        }
        Assert.Contains($"pod \"{victim}\" deleted", deleting.Output);

        var after = await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running") && p.All(x => Name(x) != victim),
            "the ReplicaSet runs 3 pods again, a new one in place of the deleted");
        var names = after.GetProperty("items").EnumerateArray().Select(Name).ToList();
        Assert.Equal(2, names.Intersect(before).Count());
        (await kubectl.RunAsync("rollout", "status", "deployment/web", "-n", "shop", "--timeout=60s")).ShouldSucceed();
        Assert.Contains("NotFound", (await kubectl.RunAsync("delete", "pod", victim, "-n", "shop")).Error);

        // A pod is the Deployment's to make: its template is not changed by a delete, and the Kraud pod records who asked.
        var deployment = (await kubectl.RunAsync("get", "deployment", "web", "-n", "shop", "-o", "json")).ShouldSucceed().Json();
        Assert.Equal(1, deployment.GetProperty("metadata").GetProperty("generation").GetInt32());
        var podId = Guid.Parse(after.GetProperty("items")[0].GetProperty("metadata").GetProperty("ownerReferences")[0].GetProperty("uid").GetString()!);
        var evicted = Assert.Single((await app.EventsOf(podId)).Select(e => e.Data).OfType<Kraud.Domain.Pods.PodReplicaEvicted>());
        Assert.Contains(victim, evicted.Reason);
        Assert.Contains("token:", evicted.Reason);
    }

    private static async Task<List<JsonElement>> IngressesAsync(TenantScope tenant) =>
        [.. (await tenant.Gql("{ ingresses { id name kind state routes { host path podId port } owner { kind id name } } }")).ShouldSucceed()
            .Data.GetProperty("ingresses").EnumerateArray()];

    private static string OwnerPodId(JsonElement pods) =>
        pods.GetProperty("items")[0].GetProperty("metadata").GetProperty("ownerReferences")[0].GetProperty("uid").GetString()!;

    [Fact]
    public async Task a_load_balancer_service_gets_a_managed_ingress_that_follows_the_deployments_rollout_and_goes_with_the_service()
    {
        await using var cluster = await ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        var file = kubectl.WriteFile("shop.yaml", Manifest + """

            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec:
              type: LoadBalancer
              selector: {app: web}
              ports: [{port: 80, targetPort: 8080}]
            """);
        (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed();
        var pods = await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running"), "3 pods run");

        var service = await Eventually.Get(async () => (await kubectl.RunAsync("get", "service", "web", "-n", "shop", "-o", "json")).ShouldSucceed().Json(),
            s => s.GetProperty("status").GetProperty("loadBalancer").TryGetProperty("ingress", out _), TimeSpan.FromSeconds(30), "the Service has its load balancer");
        var hostname = service.GetProperty("status").GetProperty("loadBalancer").GetProperty("ingress")[0].GetProperty("hostname").GetString()!;
        Assert.EndsWith(".ingress.kraud.cloud", hostname);
        Assert.StartsWith("web-shop-", hostname);
        Assert.Contains(hostname, (await kubectl.RunAsync("get", "services", "-n", "shop")).ShouldSucceed().Output);

        var ingress = Assert.Single(await IngressesAsync(cluster.Tenant));
        Assert.Equal("MANAGED", ingress.GetProperty("kind").GetString());
        Assert.Equal("kubernetes service", ingress.GetProperty("owner").GetProperty("kind").GetString());
        var route = Assert.Single(ingress.GetProperty("routes").EnumerateArray());
        Assert.Equal((hostname, "/", OwnerPodId(pods), 8080),
            (route.GetProperty("host").GetString(), route.GetProperty("path").GetString(), route.GetProperty("podId").GetString(), route.GetProperty("port").GetInt32()));
        // The ingress is the Service's: a tenant's own command cannot re-route or delete it.
        (await cluster.Tenant.Gql("mutation($id: ID!) { deleteIngress(id: $id) { id } }", new { id = ingress.GetProperty("id").GetString() })).ShouldFailWith("PRECONDITION");

        // A new template is a new ReplicaSet (a new Kraud pod): the ingress routes to it once the rollout made it current.
        (await kubectl.RunAsync("set", "image", "deployment/web", "-n", "shop", "nginx=nginx:1.28")).ShouldSucceed();
        (await kubectl.RunAsync("rollout", "status", "deployment/web", "-n", "shop", "--timeout=90s")).ShouldSucceed();
        var rolled = await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running" && Image(x) == "nginx:1.28"), "3 pods of the new image run");
        var newPod = OwnerPodId(rolled);
        Assert.NotEqual(OwnerPodId(pods), newPod);
        await Eventually.Until(async () => (await IngressesAsync(cluster.Tenant)).Single().GetProperty("routes")[0].GetProperty("podId").GetString() == newPod,
            TimeSpan.FromSeconds(30), "the ingress routes to the new ReplicaSet's pod");

        // Two ports cannot be one managed ingress's route: refused with 422, nothing appended.
        var twoPorts = kubectl.WriteFile("two.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: two, namespace: shop}\n" +
            "spec: {type: LoadBalancer, selector: {app: web}, ports: [{name: a, port: 80}, {name: b, port: 81}]}\n");
        var refused = await kubectl.RunAsync("apply", "-f", twoPorts);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("one HTTP port", refused.Error);

        (await kubectl.RunAsync("delete", "service", "web", "-n", "shop")).ShouldSucceed();
        Assert.DoesNotContain(await IngressesAsync(cluster.Tenant), i => i.GetProperty("state").GetString() != "DELETED");
    }

    [Fact]
    public async Task kubectl_get_pods_watch_sees_a_failed_hosts_pod_go_and_its_replacement_run_on_another_host()
    {
        await using var cluster = await ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        (await kubectl.RunAsync("apply", "-f", kubectl.WriteFile("shop.yaml", Manifest))).ShouldSucceed();
        var before = (await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running"), "3 pods run")).GetProperty("items").EnumerateArray()
            .ToDictionary(Name, p => p.GetProperty("spec").GetProperty("nodeName").GetString()!);
        var (victimPod, victimNode) = before.First();
        var victim = app.Agents.All.Single(a => a.Definition.Name == victimNode);

        using var watch = kubectl.Start("get", "pods", "-n", "shop", "--watch", "--output-watch-events", "-o", "wide");
        await Eventually.Until(() => Task.FromResult(before.Keys.All(watch.Output.Contains)), TimeSpan.FromSeconds(30),
            "the watch lists the running pods first");
        victim.PowerOff();
        try
        {
            // The failed host's pod is deleted (its microVM is gone with the host) and a new pod of the replica runs elsewhere.
            await Eventually.Get(() => Task.FromResult(watch.Output + watch.Errors),
                output => Lines(output).Any(l => l.StartsWith("DELETED", StringComparison.Ordinal) && l.Contains(victimPod, StringComparison.Ordinal))
                          && Lines(output).Any(IsNewRunningPod),
                TimeSpan.FromSeconds(app.HeartbeatTimeoutSeconds + 60), $"the watch sees {victimPod} deleted and its replacement running");
        }
        finally
        {
            victim.PowerOn();
            await app.WaitForHostStateAsync(victim.Id.ToString(), "READY", TimeSpan.FromSeconds(30), "the host recovered");
        }
        var after = (await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running"), "3 pods run again")).GetProperty("items").EnumerateArray().ToList();
        Assert.DoesNotContain(after, p => Name(p) == victimPod);
        Assert.Equal(3, after.Select(p => p.GetProperty("spec").GetProperty("nodeName").GetString()).Distinct().Count());

        static IEnumerable<string> Lines(string output) => output.Split('\n');

        bool IsNewRunningPod(string line)
        {
            var columns = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // EVENT NAME READY STATUS RESTARTS AGE IP NODE …
            return columns.Length > 7 && columns[0] is "ADDED" or "MODIFIED" && columns[1].StartsWith("web-", StringComparison.Ordinal)
                   && !before.ContainsKey(columns[1]) && columns[3] == "Running" && columns[7] != victimNode;
        }
    }

    private static async Task<List<JsonElement>> VolumesAsync(TenantScope tenant) =>
        [.. (await tenant.Gql("{ volumes(first: 100) { nodes { id name class sizeGiB state attachedTo } } }")).ShouldSucceed()
            .Data.GetProperty("volumes").GetProperty("nodes").EnumerateArray()];

    [Fact]
    public async Task a_persistent_volume_claim_is_a_kraud_volume_that_a_deployments_pod_mounts_and_it_goes_after_the_claim()
    {
        await using var cluster = await ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        var file = kubectl.WriteFile("db.yaml", """
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: pgdata, namespace: default}
            spec:
              storageClassName: block
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 10Gi}}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: db, namespace: default}
            spec:
              replicas: 1
              selector: {matchLabels: {app: db}}
              template:
                metadata: {labels: {app: db}}
                spec:
                  containers:
                  - name: postgres
                    image: postgres:16
                    volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]
                  volumes:
                  - name: data
                    persistentVolumeClaim: {claimName: pgdata}
            """);
        (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed();

        var claim = await Eventually.Get(async () => (await kubectl.RunAsync("get", "pvc", "pgdata", "-o", "json")).ShouldSucceed().Json(),
            c => c.GetProperty("status").GetProperty("phase").GetString() == "Bound", TimeSpan.FromSeconds(60), "the claim is Bound");
        Assert.Equal("10Gi", claim.GetProperty("status").GetProperty("capacity").GetProperty("storage").GetString());
        var volumeName = claim.GetProperty("spec").GetProperty("volumeName").GetString()!;
        Assert.Contains("Bound", (await kubectl.RunAsync("get", "pvc")).ShouldSucceed().Output);
        var pods = await Eventually.Get(async () => (await kubectl.RunAsync("get", "pods", "-o", "json")).ShouldSucceed().Json(),
            p => p.GetProperty("items").EnumerateArray().Any(x => Phase(x) == "Running"), TimeSpan.FromSeconds(60), "the database pod runs");
        var volume = Assert.Single(await VolumesAsync(cluster.Tenant), v => v.GetProperty("name").GetString() == volumeName);
        Assert.Equal(("BLOCK", 10), (volume.GetProperty("class").GetString(), volume.GetProperty("sizeGiB").GetInt32()));
        Assert.Equal([OwnerPodId(pods)], volume.GetProperty("attachedTo").EnumerateArray().Select(a => a.GetString()));

        // What Kraud cannot do is said before anything is written: another class, a resize, a claim that is not there.
        var refusals = new[]
        {
            ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: fast, namespace: default}\n" +
             "spec: {storageClassName: ssd, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n", "supported values: \"block\""),
            ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: pgdata, namespace: default}\n" +
             "spec: {storageClassName: block, accessModes: [ReadWriteOnce], resources: {requests: {storage: 20Gi}}}\n", "cannot resize"),
            ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: shared, namespace: default}\n" +
             "spec: {storageClassName: block, accessModes: [ReadWriteMany], resources: {requests: {storage: 1Gi}}}\n", "storageClassName gfs is shared"),
        };
        foreach (var (manifest, message) in refusals)
        {
            var refused = await kubectl.RunAsync("apply", "-f", kubectl.WriteFile("bad.yaml", manifest));
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains(message, refused.Error);
        }
        Assert.Single(await VolumesAsync(cluster.Tenant));

        (await kubectl.RunAsync("delete", "-f", file)).ShouldSucceed();
        await Eventually.Until(async () => (await VolumesAsync(cluster.Tenant)).All(v => v.GetProperty("state").GetString() == "DELETED"),
            TimeSpan.FromSeconds(60), "the claim's volume is deleted once its pod let go of it");
    }

    [Fact]
    public async Task deleting_the_cluster_stops_the_pods_of_its_deployments_and_forgets_its_objects()
    {
        await using var cluster = await ClusterAsync(app);
        var kubectl = cluster.Kubectl;
        (await kubectl.RunAsync("apply", "-f", kubectl.WriteFile("shop.yaml", Manifest))).ShouldSucceed();
        await WaitForPods(kubectl, p => p.Length == 3 && p.All(x => Phase(x) == "Running"), "3 pods run");
        var deployment = (await kubectl.RunAsync("get", "deployment", "web", "-n", "shop", "-o", "json")).ShouldSucceed().Json();
        var streamId = Guid.Parse(deployment.GetProperty("metadata").GetProperty("annotations").GetProperty("kraud.cloud/resource-id").GetString()!);

        (await cluster.Tenant.Gql("mutation($id: ID!) { deleteKubernetesCluster(id: $id) { id } }", new { id = cluster.Id })).ShouldSucceed();

        await Eventually.Until(async () =>
        {
            var pods = (await cluster.Tenant.Gql("{ pods(first: 200) { nodes { name state } } }")).ShouldSucceed().Data.GetProperty("pods").GetProperty("nodes")
                .EnumerateArray().ToList();
            return pods.Count > 0 && pods.All(p => p.GetProperty("state").GetString() == "STOPPED");
        }, TimeSpan.FromSeconds(60), "the Deployment's pods stopped with the cluster's machines");
        var history = await app.EventsOf(streamId);
        Assert.IsType<Kraud.Domain.KubernetesApi.KubeObjectDeleted>(history.Select(e => e.Data).Last(e => e is not Kraud.Domain.KubernetesApi.KubeReplicaSetRetired));
        Assert.Contains(history, e => e.Data is Kraud.Domain.KubernetesApi.KubeReplicaSetRetired);
    }

    [Fact]
    public async Task a_deployments_timeline_lists_its_kubernetes_history_and_the_audit_log_shows_who_applied_it()
    {
        await using var cluster = await ClusterAsync(app);
        var (tenant, kubectl) = (cluster.Tenant, cluster.Kubectl);
        var file = kubectl.WriteFile("shop.yaml", Manifest);
        (await kubectl.RunAsync("apply", "-f", file)).ShouldSucceed();
        (await kubectl.RunAsync("scale", "deployment/web", "-n", "shop", "--replicas=2")).ShouldSucceed();
        var deployment = (await kubectl.RunAsync("get", "deployment", "web", "-n", "shop", "-o", "json")).ShouldSucceed().Json();
        var resourceId = deployment.GetProperty("metadata").GetProperty("annotations").GetProperty("kraud.cloud/resource-id").GetString()!;

        var timeline = (await tenant.Gql("query($id: ID!) { timeline(resourceId: $id) { type actor streamId } }", new { id = resourceId }))
            .ShouldSucceed().Data.GetProperty("timeline").EnumerateArray().ToList();
        var types = timeline.Where(e => e.GetProperty("streamId").GetString() == resourceId).Select(e => e.GetProperty("type").GetString()!).ToList();
        Assert.Equal(["kube_object_created", "kube_replica_set_created", "kube_object_changed", "kube_replica_set_scaled"],
            types.Select(t => t.Split('.').Last()).ToList());
        // The Kraud pod the ReplicaSet runs is in the Deployment's causal history too.
        Assert.Contains(timeline, e => e.GetProperty("type").GetString()!.Contains("pod_requested", StringComparison.Ordinal));

        var actor = timeline.First().GetProperty("actor").GetString()!;
        Assert.StartsWith("token:", actor);
        var audit = await Eventually.Get(async () => (await tenant.Gql("{ auditLog(first: 200) { nodes { actor action resourceId } } }")).ShouldSucceed()
                .Data.GetProperty("auditLog").GetProperty("nodes").EnumerateArray().ToList(),
            // The audit chain is an async projection with an entry per event too: wait for the scale's entry, not for a count.
            nodes => nodes.Any(n => n.GetProperty("resourceId").GetString() == resourceId && n.GetProperty("action").GetString() == "UpdateKubernetesObject"),
            TimeSpan.FromSeconds(30), "the audit log has the apply and the scale");
        var entries = audit.Where(n => n.GetProperty("resourceId").GetString() == resourceId).ToList();
        Assert.Contains(entries, n => n.GetProperty("action").GetString() == "CreateKubernetesObject" && n.GetProperty("actor").GetString() == actor);
        Assert.Contains(entries, n => n.GetProperty("action").GetString() == "UpdateKubernetesObject" && n.GetProperty("actor").GetString() == actor);
    }
}
