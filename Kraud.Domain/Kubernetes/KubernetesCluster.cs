using System.Collections.Immutable;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Domain.Kubernetes;

/// <summary>A pool of worker nodes: one pod of the cluster, one microVM per node, spread over distinct hosts.</summary>
public sealed record NodePool(string Name, Guid PodId, int Nodes, int Cpu, int MemoryMiB);

public sealed record KubernetesClusterRequested(
    Guid ClusterId, Guid TenantId, string Name, string Version, string ControlPlaneZone, Guid ControlPlanePodId, IReadOnlyList<NodePool> NodePools,
    string CaCertificatePem, string RequestedBy, DateTimeOffset At);

public sealed record NodePoolScaled(Guid ClusterId, string Pool, int From, int To, string By, DateTimeOffset At);

/// <summary>A client certificate was issued under the cluster's CA (the key went to the caller only; this records who got what).</summary>
public sealed record KubeconfigIssued(Guid ClusterId, string Subject, string SerialNumber, DateTimeOffset NotAfter, string By, DateTimeOffset At);

/// <summary>A client certificate of the cluster may no longer be used: its Kubernetes API refuses it (401).</summary>
public sealed record KubeconfigRevoked(Guid ClusterId, string SerialNumber, string By, DateTimeOffset At);

public sealed record KubernetesClusterDeletionRequested(Guid ClusterId, string By, DateTimeOffset At);

public sealed record KubernetesCluster(
    Guid Id, Guid TenantId, string Name, string Version, string ControlPlaneZone, Guid ControlPlanePodId, ImmutableList<NodePool> NodePools,
    string CaCertificatePem, bool Exists, bool Deleting, DateTimeOffset CreatedAt) : IState<KubernetesCluster>
{
    public static KubernetesCluster Initial { get; } = new(Guid.Empty, Guid.Empty, "", "", "", Guid.Empty, [], "", false, false, default);

    /// <summary>The namespace the cluster's pods live in.</summary>
    public string Namespace => KubernetesPlan.Namespace(Name);

    /// <summary>Every client certificate issued under the cluster's CA, by serial number; true once revoked.</summary>
    public ImmutableDictionary<string, bool> ClientCertificates { get; init; } = ImmutableDictionary<string, bool>.Empty;

    /// <summary>A certificate the cluster's API accepts: issued by kubeconfig and not revoked.</summary>
    public bool Accepts(string serialNumber) => ClientCertificates.TryGetValue(serialNumber, out var revoked) && !revoked;

    public IEnumerable<Guid> PodIds => NodePools.Select(p => p.PodId).Prepend(ControlPlanePodId);

    public KubernetesCluster Evolve(object @event) => @event switch
    {
        KubernetesClusterRequested e => new KubernetesCluster(e.ClusterId, e.TenantId, e.Name, e.Version, e.ControlPlaneZone, e.ControlPlanePodId,
            [.. e.NodePools], e.CaCertificatePem, true, false, e.At),
        NodePoolScaled e => this with { NodePools = NodePools.Select(p => p.Name == e.Pool ? p with { Nodes = e.To } : p).ToImmutableList() },
        KubeconfigIssued e => this with { ClientCertificates = ClientCertificates.SetItem(e.SerialNumber, false) },
        KubeconfigRevoked e => this with { ClientCertificates = ClientCertificates.SetItem(e.SerialNumber, true) },
        KubernetesClusterDeletionRequested => this with { Deleting = true },
        _ => this,
    };
}
