using Kraud.Api.Common;
using Kraud.Domain.Volumes;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>
/// Another try at placing the replicas of a volume no storage host could take: hosts come back, are added or emptied
/// without the volume hearing of it. A durable scheduled message, not a loop that scans the volumes.
/// </summary>
/// <param name="Since">The refusal it follows (<see cref="Volume.PlacementRefusedSince"/>).</param>
/// <param name="Attempt">How many tries this one is (1: the first).</param>
public sealed record RetryVolumePlacement(Guid VolumeId, DateTimeOffset Since, int Attempt);

/// <summary>A refused volume is tried again after its <see cref="PlacementBackoff"/>, as pods are (RetryPodPlacement).</summary>
public static class RetryVolumePlacementHandler
{
    public static async Task Handle(RetryVolumePlacement retry, IDocumentSession session, IMessageContext context)
    {
        if ((await session.LoadAsync<VolumeView>(retry.VolumeId))?.Volume is not { Unplaced: > 0 } volume || volume.PlacementRefusedSince != retry.Since) return;
        await context.PublishAsync(new ScheduleVolume(retry.VolumeId, null));
        var next = retry with { Attempt = retry.Attempt + 1 };
        await context.ScheduleAsync(next, PlacementBackoff.For(next.Attempt));
    }

    /// <summary>Starts the retries of a refusal that a decision just began.</summary>
    public static async Task ScheduleAsync(IMessageContext context, Volume before, Volume after)
    {
        if (after.PlacementRefusedSince is { } since && since != before.PlacementRefusedSince)
            await context.ScheduleAsync(new RetryVolumePlacement(after.Id, since, 1), PlacementBackoff.For(1));
    }
}
