using JasperFx.Events;
using Kraud.Domain.Kubernetes;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Kubernetes;

/// <summary>A cluster as the API shows it (its parts' state is read from their pods). Inline: visible right after the command.</summary>
public sealed class KubernetesClusterView
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public int Version { get; set; }
    public KubernetesCluster Cluster { get; set; } = KubernetesCluster.Initial;
}

public sealed class KubernetesClusterViewProjection : SingleStreamProjection<KubernetesClusterView, Guid>
{
    public override KubernetesClusterView? Evolve(KubernetesClusterView? snapshot, Guid id, IEvent e)
    {
        var cluster = Snapshots.Evolve(snapshot?.Cluster, e);
        return cluster.Exists ? new KubernetesClusterView { Id = cluster.Id, TenantId = cluster.TenantId, Version = (int)e.Version, Cluster = cluster } : snapshot;
    }
}
