using Kraud.Api.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>
/// Another try at placing a pod the scheduler refused: hosts come back, are uncordoned, added or emptied without the pod
/// hearing of it. A durable scheduled message, not a loop that scans the pods.
/// </summary>
/// <param name="Since">The refusal it follows (<see cref="Pod.UnschedulableSince"/>): a pod placed and refused again gets retries of its own.</param>
/// <param name="Attempt">How many tries this one is (1: the first).</param>
public sealed record RetryPodPlacement(Guid PodId, DateTimeOffset Since, int Attempt);

/// <summary>A refused pod is tried again after its <see cref="PlacementBackoff"/>. Placing is idempotent: the same refusal appends nothing.</summary>
public static class RetryPodPlacementHandler
{
    public static async Task Handle(RetryPodPlacement retry, IDocumentSession session, IMessageContext context)
    {
        if ((await session.LoadAsync<PodView>(retry.PodId))?.Pod.UnschedulableSince != retry.Since) return;
        await context.PublishAsync(new SchedulePod(retry.PodId, null));
        var next = retry with { Attempt = retry.Attempt + 1 };
        await context.ScheduleAsync(next, PlacementBackoff.For(next.Attempt));
    }

    /// <summary>Starts the retries of a refusal that a decision just began.</summary>
    public static async Task ScheduleAsync(IMessageContext context, Pod before, Pod after)
    {
        if (after.UnschedulableSince is { } since && since != before.UnschedulableSince)
            await context.ScheduleAsync(new RetryPodPlacement(after.Id, since, 1), PlacementBackoff.For(1));
    }
}
