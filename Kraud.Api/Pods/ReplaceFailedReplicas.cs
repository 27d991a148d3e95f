using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>
/// A failed replica's back-off (<see cref="Pod.RestartBackoff"/>) is over: the deadline <see cref="PodStreams"/> schedules
/// whenever a pod's <see cref="Pod.NextReplacementAt"/> changes. A durable scheduled message, so it outlives the node
/// that scheduled it and fires once in the cluster.
/// </summary>
public sealed record ReplaceFailedReplicasDue(Guid PodId);

/// <summary>
/// Replaces failed replicas of ordinary pods (a crashed or never-booted microVM) once their back-off is over, like a
/// restart policy of "always". Confidential pods are left FAILED, as the product table says.
/// </summary>
public static class ReplaceFailedReplicasHandler
{
    private static readonly Principal Reconciler = Principal.System("reconciler");

    public static async Task Handle(ReplaceFailedReplicasDue due, IDocumentSession session, IMessageContext context, IPods pods, TimeProvider time)
    {
        var loaded = await Streams.FetchForWritingAsync<Pod>(session, due.PodId);
        if (!loaded.State.Exists) return;
        var now = time.GetUtcNow();
        var after = await pods.ExecuteAsync(session, context, new ReplaceFailedReplicas(due.PodId, now), Reconciler, loaded: loaded);
        // Nothing replaced (a node whose clock runs ahead fired it early): the deadline stands, so it is set again.
        if (ReferenceEquals(after, loaded.State) && after.NextReplacementAt is { } next)
            await context.ScheduleAsync(due, next > now ? next : now.AddSeconds(1));
    }

    /// <summary>Schedules the pod's next replacement when a decision moved it (a replica failed, or one was replaced).</summary>
    public static async Task ScheduleAsync(IMessageContext context, Pod before, Pod after)
    {
        if (after.NextReplacementAt is { } next && next != before.NextReplacementAt)
            await context.ScheduleAsync(new ReplaceFailedReplicasDue(after.Id), next);
    }
}
