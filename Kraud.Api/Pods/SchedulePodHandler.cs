using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Kraud.Domain.Scheduling;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>The scheduler: runs on a sequential queue, reads the fleet's free capacity, and places all unplaced replicas or none.</summary>
public static class SchedulePodHandler
{
    private static readonly Principal Scheduler = Principal.System("scheduler");

    public static async Task Handle(SchedulePod message, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        var pod = await PodStreams.LoadAsync(session, message.PodId);
        if (!pod.Exists || pod.Unplaced.Count == 0) return;
        var fleet = await session.Query<HostView>().ToListAsync();
        var request = new PlacementRequest(pod.Id, pod.Unplaced, pod.Spec.Cpu, pod.Spec.MemoryMiB, pod.Spec.Zone, pod.Spec.Confidential,
            pod.Live.Select(i => i.HostId).ToHashSet());
        var command = Placement.Place(request, fleet.Select(h => h.Host)) switch
        {
            Placed placed => new ApplyPlacement(pod.Id, placed.Hosts.Select(p => new ReplicaPlacement(p.Replica, p.Host.Id, p.Host.Name)).ToList(),
                null, time.GetUtcNow()),
            Unschedulable u => new ApplyPlacement(pod.Id, [], u.Reason, time.GetUtcNow()),
            var other => throw new InvalidOperationException($"Unknown placement result {other}"),
        };
        await PodStreams.ExecuteAsync(session, context, command, Scheduler);
    }
}
