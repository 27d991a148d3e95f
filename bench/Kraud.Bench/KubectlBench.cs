using System.Diagnostics;
using System.Text;
using Kraud.Domain.Pods;
using Kraud.HostRuntime.Drivers.Qemu;
using Kraud.Projections.KubernetesApi;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Bench;

/// <summary>
/// Issue 23's figure: `kubectl apply -f` of N Deployments (one replica each) until every one runs, beside the same N pods
/// created through GraphQL on the same application and fleet. The ratio is the cost of the Kubernetes API layer (kubectl's
/// discovery, OpenAPI validation and one HTTPS request per object, admission, the Deployment's stream and its ReplicaSet's
/// pod) over Kraud's own path (one GraphQL mutation per pod).
/// </summary>
public static class KubectlBench
{
    public static async Task<int> RunAsync(Options options)
    {
        var kubectl = Environment.GetEnvironmentVariable("KRAUD_KUBECTL") is { Length: > 0 } path ? path : "kubectl";
        await using var app = await BenchApp.StartAsync(options, ("Kubernetes:ApiUrl", "https://127.0.0.1:0"));
        var directory = Path.Combine(Path.GetTempPath(), $"kraud-bench-kubectl-{Guid.NewGuid():N}"[..36]);
        Directory.CreateDirectory(directory);
        try
        {
            var cluster = (await app.Gql(app.TenantToken, """
                mutation { createKubernetesCluster(name: "bench", version: "1.32", controlPlaneZone: "bench-a",
                  nodePools: [{name: "workers", nodes: 1, cpu: 1, memoryMiB: 1024}]) { id } }
                """)).GetProperty("createKubernetesCluster").GetProperty("id").GetString()!;
            var kubeconfig = Path.Combine(directory, "kubeconfig");
            await File.WriteAllTextAsync(kubeconfig, (await app.Gql(app.TenantToken, "query($id: ID!) { kubeconfig(clusterId: $id) }", new { id = cluster }))
                .GetProperty("kubeconfig").GetString());

            // Warm-up of both paths (handler compilation, kubectl's discovery cache is per run and not warmed on purpose).
            await RunKubectlAsync(kubectl, kubeconfig, directory, "apply", "-f", await WriteAsync(directory, "warm.yaml", Deployments("warm", 1)));
            await WaitForDeploymentsAsync(app, "warm", 1);
            // In the namespace the measured pods use: its network overlay is made once, not by the first measured pods racing.
            var warm = await app.CreatePodAsync("warm-gql", 1, "gql");
            await BenchApp.WaitUntil(async () => { await using var s = app.Store.QuerySession(); return (await s.LoadAsync<PodView>(warm))?.State == PodState.Running; }, "warm-up pod runs");

            // GraphQL: N createPod mutations from the bench's concurrent clients, until every pod is RUNNING.
            var clock = Stopwatch.StartNew();
            var next = -1;
            var ids = new Guid[options.Pods];
            await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(async () =>
            {
                while (Interlocked.Increment(ref next) is var n && n < options.Pods) ids[n] = await app.CreatePodAsync($"gql{n:000}", 1, "gql");
            })));
            var gqlAccepted = clock.Elapsed.TotalSeconds;
            await BenchApp.WaitUntil(async () =>
            {
                await using var s = app.Store.QuerySession();
                return await s.Query<PodView>().Where(p => p.Id.IsOneOf(ids) && p.State == PodState.Running).CountAsync() == options.Pods;
            }, $"{options.Pods} GraphQL pods run");
            var gqlRunning = clock.Elapsed.TotalSeconds;

            // kubectl: one apply of a file of N Deployments (a fresh kubectl: discovery and OpenAPI included), until all run.
            var file = await WriteAsync(directory, "deployments.yaml", Deployments("web", options.Pods));
            clock.Restart();
            await RunKubectlAsync(kubectl, kubeconfig, directory, "apply", "-f", file);
            var applied = clock.Elapsed.TotalSeconds;
            await WaitForDeploymentsAsync(app, "web", options.Pods);
            var kubectlRunning = clock.Elapsed.TotalSeconds;

            Console.WriteLine();
            Console.WriteLine($"Kraud kubectl benchmark: {options.Pods} Deployments of 1 replica through `kubectl apply -f` ({Version(kubectl)}) beside {options.Pods} pods " +
                              $"through GraphQL ({options.Concurrency} concurrent clients), {options.Hosts} simulated compute hosts, boot delay 0, " +
                              $"PostgreSQL {(options.Durable ? "durable (fsync on)" : "fsync off")}, {Environment.ProcessorCount} cores");
            Console.WriteLine();
            Console.WriteLine("| path | requests accepted | all RUNNING | RUNNING per second | baseline: GraphQL, this run |");
            Console.WriteLine("|---|---|---|---|---|");
            Console.WriteLine($"| GraphQL createPod x {options.Pods} | {gqlAccepted:F1} s | {gqlRunning:F1} s | {options.Pods / gqlRunning:F1} | 1.00 |");
            Console.WriteLine($"| kubectl apply -f ({options.Pods} Deployments) | {applied:F1} s | {kubectlRunning:F1} s | {options.Pods / kubectlRunning:F1} | " +
                              $"{kubectlRunning / gqlRunning:F2} x the time |");
            Console.WriteLine();
            return 0;
        }
        finally
        {
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
        }
    }

    private static string Deployments(string prefix, int count)
    {
        var text = new StringBuilder();
        for (var i = 0; i < count; i++)
            text.Append(CultureInfo.InvariantCulture, $$"""
                ---
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: {{prefix}}{{i:000}}
                  namespace: default
                spec:
                  replicas: 1
                  selector:
                    matchLabels:
                      app: {{prefix}}{{i:000}}
                  template:
                    metadata:
                      labels:
                        app: {{prefix}}{{i:000}}
                    spec:
                      containers:
                      - name: nginx
                        image: nginx
                        resources:
                          limits: {cpu: "1", memory: 64Mi}

                """);
        return text.ToString();
    }

    private static async Task<string> WriteAsync(string directory, string name, string content)
    {
        var path = Path.Combine(directory, name);
        await File.WriteAllTextAsync(path, content);
        return path;
    }

    /// <summary>Every Deployment of the prefix has a ReplicaSet whose Kraud pod is RUNNING.</summary>
    private static Task WaitForDeploymentsAsync(BenchApp app, string prefix, int count) => BenchApp.WaitUntil(async () =>
    {
        await using var s = app.Store.QuerySession();
        var views = await s.Query<KubeObjectView>().Where(v => v.Kind == "Deployment" && v.Name.StartsWith(prefix)).ToListAsync();
        var pods = views.Select(v => v.Object.CurrentReplicaSet?.PodId).OfType<Guid>().ToArray();
        return views.Count == count && pods.Length == count
               && await s.Query<PodView>().Where(p => p.Id.IsOneOf(pods) && p.State == PodState.Running).CountAsync() == count;
    }, $"{count} Deployments run");

    private static async Task RunKubectlAsync(string kubectl, string kubeconfig, string directory, params string[] args)
    {
        var result = await ProcessRunner.RunAsync(kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", Path.Combine(directory, "cache"), .. args],
            TimeSpan.FromMinutes(5), CancellationToken.None, environment: new Dictionary<string, string?> { ["HOME"] = directory });
        if (result.ExitCode != 0) throw new InvalidOperationException($"kubectl {string.Join(' ', args)} exited {result.ExitCode}: {result.Error}{result.Output}");
    }

    private static string Version(string kubectl)
    {
        var text = ProcessRunner.Run(kubectl, ["version", "--client", "-o", "yaml"], TimeSpan.FromSeconds(30)).Output;
        return "kubectl " + (text.Split('\n').FirstOrDefault(l => l.Contains("gitVersion", StringComparison.Ordinal))?.Split(':').Last().Trim() ?? "?");
    }
}
