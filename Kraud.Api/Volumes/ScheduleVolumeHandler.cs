using Kraud.Api.Common;
using Kraud.Api.Health;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.Scheduling;
using Kraud.Domain.Volumes;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Volumes;

/// <summary>
/// The volume scheduler: like the pod scheduler, batched on one sequential queue, so that two placements never take the
/// same free room; each volume of a batch sees the reservations of the ones before it.
/// </summary>
public static class ScheduleVolumeHandler
{
    public const string Queue = "volume-scheduler";
    private static readonly Principal Scheduler = Principal.System("volume-scheduler");

    public static async Task Handle(ScheduleVolume[] batch, IDocumentSession session, IMessageContext context, TimeProvider time,
        PlacementCapacities capacity, IWolverineRuntime runtime, NodeIdentity node)
    {
        var requests = batch.DistinctBy(m => m.VolumeId).ToList();
        if (await SchedulerFence.HoldAsync(session, context, runtime, node.Name, SchedulerQueue.Volumes, requests) is not { } mark) return;
        var fleet = await capacity.Storage.LockAsync(session);
        foreach (var request in requests)
        {
            var loaded = await VolumeStreams.FetchForWritingAsync(session, request.VolumeId);
            var volume = loaded.State;
            if (volume.Unplaced == 0) continue;
            var now = time.GetUtcNow();
            var result = VolumePlacement.Place(volume, fleet.Values);
            var after = await VolumeStreams.ExecuteAsync(session, context, new ApplyVolumePlacement(volume.Id, result.Hosts, result.Refusal, now), Scheduler,
                correlationId: request.CorrelationId, loaded: loaded);
            foreach (var replica in after.Replicas.Where(r => volume.Replica(r.HostId) is null))
                fleet[replica.HostId] = fleet[replica.HostId].Evolve(new StorageReserved(replica.HostId, volume.Id, volume.SizeGiB, now));
        }
        SchedulerFence.Mark(session, mark);
    }
}
