using JasperFx.Events;
using Kraud.Domain.KubernetesApi;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.KubernetesApi;

/// <summary>
/// A Kubernetes object as a cluster's API lists it. Inline, so a GET right after a write sees it; a deleted object's view
/// goes (its stream remains, and a watch learns of the delete from the event).
/// </summary>
public sealed class KubeObjectView
{
    public Guid Id { get; set; }
    public Guid ClusterId { get; set; }
    public Guid TenantId { get; set; }
    public string Kind { get; set; } = "";
    public string Namespace { get; set; } = "";
    public string Name { get; set; } = "";

    /// <summary>The stream's version when this view was written (an update's expected version).</summary>
    public int Version { get; set; }

    public KubeObject Object { get; set; } = KubeObject.Initial;

    /// <summary>More than one ReplicaSet runs: a rollout waits for the newest before it retires the others.</summary>
    public bool RollingOut { get; set; }

    /// <summary>A namespace whose deletion was asked for: the namespace controller deletes what it holds, then it.</summary>
    public bool Terminating { get; set; }
}

public sealed class KubeObjectViewProjection : SingleStreamProjection<KubeObjectView, Guid>
{
    public override KubeObjectView? Evolve(KubeObjectView? snapshot, Guid id, IEvent e)
    {
        if (e.Data is KubeObjectDeleted) return null;
        var state = Snapshots.Evolve(snapshot?.Object, e);
        if (!state.Exists) return snapshot;
        return new KubeObjectView
        {
            Id = state.Id, ClusterId = state.ClusterId, TenantId = state.TenantId, Kind = state.Kind, Namespace = state.Namespace, Name = state.Name,
            Version = (int)e.Version, Object = state, RollingOut = state.LiveReplicaSets.Count() > 1,
            Terminating = state.TerminatingSince is not null,
        };
    }
}
