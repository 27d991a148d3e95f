using Kraud.Api.Common;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Fleet;

/// <summary>
/// A host can take work it could not before (registered, uncordoned, back from failure): placements the schedulers
/// refused are tried at once instead of at their next back-off (RetryPodPlacement, RetryVolumePlacement).
/// </summary>
public sealed record HostHasRoom(Guid HostId);

public static class HostHasRoomHandler
{
    public static async Task Handle(HostHasRoom room, IDocumentSession session, IMessageContext context)
    {
        var pods = await session.Query<PodView>().Where(p => p.State == PodState.Unschedulable).Select(p => p.Id).ToListAsync();
        foreach (var pod in pods) await context.PublishAsync(new SchedulePod(pod, null));
        var volumes = await session.Query<VolumeView>().Where(v => v.State != VolumeState.Healthy && v.State != VolumeState.Deleted).ToListAsync();
        foreach (var volume in volumes.Where(v => v.Volume is { Unplaced: > 0, PlacementRefusal: not null }))
            await context.PublishAsync(new ScheduleVolume(volume.Id, null));
    }
}
