using JasperFx.Events;
using Kraud.Domain.Pods;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Pods;

/// <summary>
/// The pod as the API shows it: the decider's own state plus what queries filter and sort on. Inline, so a pod is
/// visible in the same transaction that requested it.
/// </summary>
public sealed class PodView
{
    public Guid Id { get; set; }
    public Guid TenantId { get; set; }
    public string Name { get; set; } = "";
    public string Namespace { get; set; } = "";
    public PodState State { get; set; }
    public string? Reason { get; set; }
    public int Version { get; set; }

    /// <summary>Creation time in ticks: with the id as tie-breaker, the stable order pagination walks.</summary>
    public long CreatedTicks { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
    public Pod Pod { get; set; } = Pod.Initial;

    public static PodView From(Pod pod, int version) => new()
    {
        Id = pod.Id,
        TenantId = pod.TenantId,
        Name = pod.Spec.Name,
        Namespace = pod.Spec.Namespace,
        State = pod.State,
        Reason = pod.Reason,
        Version = version,
        CreatedTicks = pod.CreatedAt.UtcTicks,
        CreatedAt = pod.CreatedAt,
        Pod = pod,
    };
}

public sealed class PodViewProjection : SingleStreamProjection<PodView, Guid>
{
    public override PodView? Evolve(PodView? snapshot, Guid id, IEvent e)
    {
        var after = Snapshots.Evolve(snapshot?.Pod, e);
        if (!after.Exists) return snapshot;
        return PodView.From(after, (int)e.Version);
    }
}
