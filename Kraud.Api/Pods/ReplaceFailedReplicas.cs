using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Pods;

/// <summary>
/// Replaces failed replicas of ordinary pods (a crashed or never-booted microVM) after a back-off that doubles with every
/// new generation, like a restart policy of "always". Confidential pods are left FAILED, as the product table says.
/// </summary>
public sealed class FailedReplicaReconciler(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<FailedReplicaReconciler> logger)
    : PeriodicRound(time, logger)
{
    private static readonly Principal Reconciler = Principal.System("reconciler");

    protected override TimeSpan Interval => TimeSpan.FromMilliseconds(500);
    protected override string FailureMessage => "Replacing failed replicas failed this round";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var failed = await session.Query<PodView>().Where(p => p.State == PodState.Failed).ToListAsync(ct);
        var now = Time.GetUtcNow();
        foreach (var pod in failed.Where(p => p.Pod.ReplaceableFailures(now).Count > 0))
            await new MessageBus(runtime).InvokeAsync<DecidedPod>(new PodRequest(new ReplaceFailedReplicas(pod.Id, now), Reconciler), ct);
    }
}
