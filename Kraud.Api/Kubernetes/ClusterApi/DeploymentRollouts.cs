using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.KubernetesApi;
using Kraud.Domain.Pods;
using Kraud.Projections.KubernetesApi;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// The controllers' part that waits (and the namespace controller): once a Deployment's newest ReplicaSet runs all its replicas, the older
/// ones are retired (their Kraud pods deleted). Until then they keep serving, so a rollout never runs fewer replicas than asked.
/// </summary>
public sealed class DeploymentRollouts(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<DeploymentRollouts> logger)
    : PeriodicRound(time, logger)
{
    private static readonly Principal Controller = Principal.System("deployment-controller");

    protected override TimeSpan Interval => TimeSpan.FromSeconds(1);
    protected override string FailureMessage => "Checking Deployment rollouts failed this round";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        await FinalizeNamespacesAsync(session, ct);
        var rolling = await session.Query<KubeObjectView>().Where(v => v.RollingOut).ToListAsync(ct);
        foreach (var view in rolling)
        {
            var current = view.Object.CurrentReplicaSet;
            if (current is null) continue;
            var pod = await session.LoadAsync<PodView>(current.PodId, ct);
            if (pod is null || pod.Pod.State != PodState.Running || pod.Pod.Replicas != current.Replicas) continue;
            var older = view.Object.LiveReplicaSets.Where(r => r.PodId != current.PodId).Select(r => r.PodId).ToList();
            var key = new KubeObjectKey(view.ClusterId, view.Kind, view.Namespace, view.Name);
            try
            {
                await new MessageBus(runtime).InvokeAsync(new KubeObjectRequest(new RetireReplicaSets(key, older,
                    $"ReplicaSet {current.Name} runs {current.Replicas} replicas", Controller, Time.GetUtcNow()), view.Version), ct);
            }
            catch (Exception e) when (Gql.ErrorCodes.Map(e) is not null)
            {
                // Changed meanwhile (a new template, a delete): the next round looks again.
            }
        }
    }

    /// <summary>The namespace controller: a Terminating namespace is deleted with what it still holds.</summary>
    private async Task FinalizeNamespacesAsync(IQuerySession session, CancellationToken ct)
    {
        var terminating = await session.Query<KubeObjectView>().Where(v => v.Terminating).ToListAsync(ct);
        foreach (var view in terminating)
        {
            var key = new KubeObjectKey(view.ClusterId, view.Kind, view.Namespace, view.Name);
            try
            {
                await new MessageBus(runtime).InvokeAsync(new KubeObjectRequest(new DeleteKubeObject(key, Controller, Time.GetUtcNow(), Finalize: true)), ct);
            }
            catch (Exception e) when (Gql.ErrorCodes.Map(e) is not null)
            {
                // Deleted or changed meanwhile: the next round looks again.
            }
        }
    }
}
