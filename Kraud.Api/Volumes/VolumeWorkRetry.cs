using Kraud.Api.Common;
using Kraud.Domain.Volumes;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Volumes;

/// <summary>
/// Work on block exports (a format, a resync) waits for a compute host with a hypervisor in the volume's zone, and work
/// whose compute host failed or whose microVM is gone waits to be abandoned; neither hears when that changes, so every few
/// seconds each volume with such work asks for a worker again. Finding one is idempotent (it re-reads the volume).
/// </summary>
public sealed class VolumeWorkRetry(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<VolumeWorkRetry> logger)
    : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(2);
    protected override string FailureMessage => "Looking for volume workers failed this round";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var volumes = await session.Query<VolumeView>()
            .Where(v => v.State != VolumeState.Healthy && v.State != VolumeState.Deleted).ToListAsync(ct);
        foreach (var volume in volumes.Where(v => v.Volume.NeedsWorker || v.Volume.Work is not null))
            await new MessageBus(runtime).PublishAsync(new FindVolumeWorker(volume.Id));
    }
}
