using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Domain.Kubernetes;

public abstract record KubernetesCommand(Guid ClusterId, Principal By, DateTimeOffset At);

public sealed record NodePoolRequest(string Name, int Nodes, int Cpu, int MemoryMiB);

/// <param name="CaCertificatePem">The cluster CA, made by the caller (keys are random, so not made in the decider).</param>
public sealed record CreateKubernetesCluster(
    Guid ClusterId, Guid TenantId, string Name, string Version, string ControlPlaneZone, IReadOnlyList<NodePoolRequest> NodePools, string CaCertificatePem,
    Principal By, DateTimeOffset At) : KubernetesCommand(ClusterId, By, At);

public sealed record ScaleNodePool(Guid ClusterId, string Pool, int Nodes, Principal By, DateTimeOffset At) : KubernetesCommand(ClusterId, By, At);

public sealed record IssueKubeconfig(Guid ClusterId, string Subject, string SerialNumber, DateTimeOffset NotAfter, Principal By, DateTimeOffset At)
    : KubernetesCommand(ClusterId, By, At);

public sealed record RevokeKubeconfig(Guid ClusterId, string SerialNumber, Principal By, DateTimeOffset At) : KubernetesCommand(ClusterId, By, At);

public sealed record DeleteKubernetesCluster(Guid ClusterId, Principal By, DateTimeOffset At) : KubernetesCommand(ClusterId, By, At);

public static class KubernetesDecider
{
    public static IReadOnlyList<object> Decide(KubernetesCommand command, KubernetesCluster state) => (command, state) switch
    {
        (CreateKubernetesCluster c, { Exists: true }) => throw DomainException.Conflict($"Kubernetes cluster {c.ClusterId} exists already."),
        (CreateKubernetesCluster c, _) => [Create(c)],
        (_, { Exists: false }) => throw DomainException.NotFound("Kubernetes cluster", command.ClusterId),
        (_, { Deleting: true }) => throw new DomainException(ErrorCode.Precondition, $"Kubernetes cluster {state.Name} is being deleted."),
        (ScaleNodePool c, _) => Scale(c, state),
        (IssueKubeconfig c, _) => [new KubeconfigIssued(c.ClusterId, c.Subject, c.SerialNumber, c.NotAfter, c.By.Actor, c.At)],
        (RevokeKubeconfig c, _) when !state.ClientCertificates.TryGetValue(c.SerialNumber, out _) =>
            throw DomainException.NotFound("Client certificate", c.SerialNumber),
        (RevokeKubeconfig c, _) => state.ClientCertificates[c.SerialNumber] ? [] : [new KubeconfigRevoked(c.ClusterId, c.SerialNumber, c.By.Actor, c.At)],
        (DeleteKubernetesCluster c, _) => [new KubernetesClusterDeletionRequested(c.ClusterId, c.By.Actor, c.At)],
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.GetType().Name),
    };

    private static KubernetesClusterRequested Create(CreateKubernetesCluster c)
    {
        Names.RequireDnsLabel(c.Name, "name");
        if (c.Name.Length > KubernetesPlan.MaxNameLength)
            throw DomainException.Validation($"name '{c.Name}' is longer than {KubernetesPlan.MaxNameLength} characters (its pods live in namespace k8s-<name>).");
        if (!KubernetesPlan.Versions.Contains(c.Version))
            throw DomainException.Validation($"version '{c.Version}' is not offered; choose one of {string.Join(", ", KubernetesPlan.Versions)}.");
        Names.RequireDnsLabel(c.ControlPlaneZone, "controlPlaneZone");
        Names.RequireRange(c.NodePools.Count, 1, KubernetesPlan.MaxNodePools, "nodePools");
        foreach (var pool in c.NodePools) ValidatePool(pool);
        if (c.NodePools.GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw DomainException.Validation($"nodePools: the name '{twice.Key}' is used twice.");
        var pools = c.NodePools.Select(p => new NodePool(p.Name, KubernetesPlan.NodePoolPodId(c.ClusterId, p.Name), p.Nodes, p.Cpu, p.MemoryMiB)).ToList();
        return new KubernetesClusterRequested(c.ClusterId, c.TenantId, c.Name, c.Version, c.ControlPlaneZone, KubernetesPlan.ControlPlanePodId(c.ClusterId),
            pools, c.CaCertificatePem, c.By.Actor, c.At);
    }

    private static void ValidatePool(NodePoolRequest pool)
    {
        Names.RequireDnsLabel(pool.Name, "nodePools.name");
        if (pool.Name.Length > 40) throw DomainException.Validation($"nodePools.name '{pool.Name}' is longer than 40 characters.");
        Names.RequireRange(pool.Nodes, 1, PodDecider.MaxReplicas, $"nodePools[{pool.Name}].nodes");
        Names.RequireRange(pool.Cpu, 1, 64, $"nodePools[{pool.Name}].cpu");
        Names.RequireRange(pool.MemoryMiB, 1024, 256 * 1024, $"nodePools[{pool.Name}].memoryMiB");
    }

    private static IReadOnlyList<object> Scale(ScaleNodePool c, KubernetesCluster state)
    {
        var pool = state.NodePools.FirstOrDefault(p => p.Name == c.Pool) ?? throw DomainException.NotFound("Node pool", c.Pool);
        Names.RequireRange(c.Nodes, 1, PodDecider.MaxReplicas, "nodes");
        return c.Nodes == pool.Nodes ? [] : [new NodePoolScaled(c.ClusterId, pool.Name, pool.Nodes, c.Nodes, c.By.Actor, c.At)];
    }
}

/// <summary>
/// How a cluster maps onto pods: one control-plane pod of three microVMs (the scheduler puts replicas of a pod on
/// distinct hosts of one zone, and replaces one whose host fails) and one pod per node pool, all in the control plane's zone.
/// </summary>
public static class KubernetesPlan
{
    public const int ControlPlaneNodes = 3, ControlPlaneCpu = 2, ControlPlaneMemoryMiB = 4096, MaxNodePools = 10, MaxNameLength = 40;

    /// <summary>The Kubernetes minor versions offered (the three newest, as upstream supports).</summary>
    public static readonly IReadOnlyList<string> Versions = ["1.32", "1.33", "1.34"];

    public static string Namespace(string clusterName) => "k8s-" + clusterName;

    public static Guid ControlPlanePodId(Guid clusterId) => DeterministicId.From("k8s-control-plane", clusterId);

    public static Guid NodePoolPodId(Guid clusterId, string pool) => DeterministicId.From("k8s-node-pool", clusterId, pool);

    public static ResourceOwner Owner(KubernetesCluster cluster) => new(ResourceOwner.KubernetesCluster, cluster.Id, cluster.Name);

    public static IEnumerable<CreatePod> Pods(KubernetesCluster cluster, Principal by, DateTimeOffset at)
    {
        var owner = Owner(cluster);
        var env = new Dictionary<string, string> { ["KRAUD_K8S_CLUSTER"] = cluster.Id.ToString(), ["KRAUD_K8S_VERSION"] = cluster.Version };
        yield return new CreatePod(cluster.ControlPlanePodId, cluster.TenantId,
            new PodSpec("control-plane", cluster.Namespace, $"kraud/k8s-control-plane:{cluster.Version}", [], env, ControlPlaneCpu, ControlPlaneMemoryMiB,
                cluster.ControlPlaneZone, false, 20), ControlPlaneNodes, by, at, owner);
        foreach (var pool in cluster.NodePools)
            yield return new CreatePod(pool.PodId, cluster.TenantId,
                new PodSpec($"pool-{pool.Name}", cluster.Namespace, $"kraud/k8s-node:{cluster.Version}", [],
                    new Dictionary<string, string>(env) { ["KRAUD_K8S_NODE_POOL"] = pool.Name }, pool.Cpu, pool.MemoryMiB, cluster.ControlPlaneZone, false, 50),
                pool.Nodes, by, at, owner);
    }
}
