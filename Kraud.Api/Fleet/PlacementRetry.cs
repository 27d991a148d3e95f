using Kraud.Api.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Fleet;

/// <summary>
/// Pods the scheduler found UNSCHEDULABLE and volumes whose replicas no storage host could take are tried again every
/// few seconds: hosts come back, are uncordoned, added or emptied without those pods and volumes hearing of it.
/// Placing is idempotent (the schedulers re-read the state, and the same refusal appends nothing). Draining hosts are
/// looked at again too, for the same reason.
/// </summary>
public sealed class PlacementRetry(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<PlacementRetry> logger)
    : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(2);
    protected override string FailureMessage => "Retrying placements failed this round";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        // Only refused ones: the others have a request in the (durable) scheduler queues already, and asking for
        // everything waiting each round would flood those queues under load.
        await using var session = store.QuerySession();
        var pods = await session.Query<PodView>().Where(p => p.State == PodState.Unschedulable).Select(p => p.Id).ToListAsync(ct);
        foreach (var pod in pods) await new MessageBus(runtime).PublishAsync(new SchedulePod(pod, null));
        var volumes = await session.Query<VolumeView>()
            .Where(v => v.State != VolumeState.Healthy && v.State != VolumeState.Deleted).ToListAsync(ct);
        foreach (var volume in volumes.Where(v => v.Volume.Unplaced > 0 && v.Volume.PlacementRefusal is not null))
            await new MessageBus(runtime).PublishAsync(new ScheduleVolume(volume.Id, null));
        // A drain waits on placements too: a VM placed on the host just as its drain began is evicted by FinishDrain.
        var draining = await session.Query<HostView>().Where(h => h.State == HostState.Draining).Select(h => h.Id).ToListAsync(ct);
        foreach (var host in draining) await new MessageBus(runtime).PublishAsync(new FinishDrain(host, Time.GetUtcNow()));
    }
}
