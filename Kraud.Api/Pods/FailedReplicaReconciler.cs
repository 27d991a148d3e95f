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
    : BackgroundService
{
    private static readonly Principal Reconciler = Principal.System("reconciler");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await using var session = store.QuerySession();
                var failed = await session.Query<PodView>().Where(p => p.State == PodState.Failed).ToListAsync(stoppingToken);
                var now = time.GetUtcNow();
                foreach (var pod in failed.Where(p => p.Pod.ReplaceableFailures(now).Count > 0))
                    await new MessageBus(runtime).InvokeAsync(new PodRequest(new ReplaceFailedReplicas(pod.Id, now), Reconciler), stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Replacing failed replicas failed this round");
            }
        }
    }
}
