using JasperFx.Core;
using Kraud.Api.Common;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>Volumes: replicas on storage hosts, their encryption keys, attachment to pods.</summary>
public sealed class VolumesSlice : KraudSlice
{
    public override void MapFields(Fields fields) => VolumeFields.Map(fields);

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton<IVolumes, VolumesContract>();
        services.AddRunOnceRound<VolumeScrubRound>("volume-scrub");
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<VolumeKeyRecord>();
        marten.Schema.For<ExportGrant>().Index(x => x.VolumeId);
        marten.AddDecider<Kraud.Domain.Volumes.Volume>();
    }

    public override void ConfigureWolverine(WolverineOptions wolverine)
    {
        // Volumes have a scheduler of their own (storage room, not cpu), one batch at a time so that two placements
        // never take the same free room.
        wolverine.BatchMessagesOf<ScheduleVolume>(batch =>
        {
            batch.BatchSize = 250;
            batch.TriggerTime = 5.Milliseconds();
            batch.LocalExecutionQueueName = ScheduleVolumeHandler.Queue;
        });
        wolverine.LocalQueue(ScheduleVolumeHandler.Queue).Sequential();
        wolverine.RouteToTheScheduler<ScheduleVolume>(SchedulerQueue.Volumes);
    }
}
