using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.Scheduling;
using Kraud.Domain.Volumes;
using Kraud.Projections.Fleet;
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

    public static async Task Handle(ScheduleVolume[] batch, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        var fleet = (await session.Query<HostView>().Where(h => h.Role == HostRole.Storage).ToListAsync()).ToDictionary(h => h.Id, h => h.Host);
        foreach (var request in batch.DistinctBy(m => m.VolumeId))
        {
            var loaded = await VolumeStreams.LoadAsync(session, request.VolumeId);
            var volume = loaded.State;
            if (volume.Unplaced == 0) continue;
            var now = time.GetUtcNow();
            var result = VolumePlacement.Place(volume, fleet.Values);
            var after = await VolumeStreams.ExecuteAsync(session, context, new ApplyVolumePlacement(volume.Id, result.Hosts, result.Refusal, now), Scheduler,
                correlationId: request.CorrelationId, loaded: loaded);
            foreach (var replica in after.Replicas.Where(r => volume.Replica(r.HostId) is null))
                fleet[replica.HostId] = fleet[replica.HostId].Evolve(new StorageReserved(replica.HostId, volume.Id, volume.SizeGiB, now));
        }
    }
}

/// <summary>
/// Volumes with replicas no storage host could take are tried again every few seconds, since hosts come back, are
/// uncordoned or added without the volume hearing of it. Placing is idempotent (the scheduler re-reads the volume).
/// </summary>
public sealed class VolumePlacementRetry(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<VolumePlacementRetry> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(2), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await using var session = store.QuerySession();
                var waiting = await session.Query<VolumeView>()
                    .Where(v => v.State != VolumeState.Healthy && v.State != VolumeState.Deleted).ToListAsync(stoppingToken);
                // Only refused ones: the others have a request in the (durable) scheduler queue already, and asking for
                // every waiting volume each round would flood that queue under load.
                foreach (var volume in waiting.Where(v => v.Volume.Unplaced > 0 && v.Volume.PlacementRefusal is not null))
                    await new MessageBus(runtime).PublishAsync(new ScheduleVolume(volume.Id, null));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Retrying volume placement failed this round");
            }
        }
    }
}
