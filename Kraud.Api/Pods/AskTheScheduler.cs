using Kraud.Api.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Pods;

/// <summary>
/// A node's pod asks of a moment go to the scheduler as one durable request: with a request per pod the envelope's
/// bookkeeping (outbox, queue table, notification, pop, inbox) was about five of a pod's thirty commits, while the
/// scheduler's batch gathered most of those pods before their own request arrived.
/// </summary>
public static class PodAwaitsPlacementHandler
{
    public static async Task Handle(PodAwaitsPlacement[] batch, IMessageContext context)
    {
        var asks = batch.Select(a => a.Request).DistinctBy(r => r.PodId).ToList();
        await context.PublishAsync(asks[0] with { Others = asks.Count > 1 ? asks[1..] : null });
    }
}

/// <summary>
/// Asks the scheduler for every pod that waits for hosts longer than a moment, every few seconds. A pod's ask travels in
/// memory (<see cref="PodAwaitsPlacement"/>), so a node that dies between the commit that left replicas without a host and
/// its ask's send loses it; the pod stays PENDING, and this round asks for it (the scheduler skips whatever is placed).
/// Runs on one node (a role).
/// </summary>
public sealed class SchedulerRepair(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<SchedulerRepair> logger)
    : PeriodicRound(time, logger)
{
    /// <summary>A pod younger than this has its ask on the way.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    protected override TimeSpan Interval => TimeSpan.FromSeconds(5);
    protected override string FailureMessage => "Asking the scheduler for the pending pods failed";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        var before = (Time.GetUtcNow() - Settle).UtcTicks;
        await using var session = store.QuerySession();
        var pending = await session.Query<PodView>().Where(p => p.State == PodState.Pending && p.CreatedTicks < before)
            .OrderBy(p => p.CreatedTicks).Select(p => p.Id).Take(SchedulePodHandler.Gathered).ToListAsync(ct);
        if (pending.Count == 0) return;
        var asks = await SchedulePodHandler.AsRequestedAsync(session, pending);
        if (asks.Count == 0) return;
        await new MessageBus(runtime).PublishAsync(asks[0] with { Others = asks.Count > 1 ? asks.Skip(1).ToList() : null });
    }
}
