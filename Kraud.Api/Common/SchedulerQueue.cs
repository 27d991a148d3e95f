using JasperFx.Core;
using Wolverine;
using Wolverine.Postgresql;

namespace Kraud.Api.Common;

/// <summary>
/// Placement requests travel through a PostgreSQL queue that one control-plane node at a time reads: Wolverine's
/// exclusive listener, an agent the leader assigns like the run-once rounds, and gives to another node when its holder
/// stops or goes silent. Every node may ask for a placement; one decides them, batch by batch, so that the scheduler's
/// copy of free capacity has one writer. Requests wait in the table while no node holds the role.
/// </summary>
public static class SchedulerQueue
{
    /// <summary>Pod placements (<see cref="SchedulePod"/>).</summary>
    public const string Name = "kraud_scheduler";

    /// <summary>Volume placements (<see cref="ScheduleVolume"/>).</summary>
    public const string Volumes = "kraud_volume_scheduler";

    public static void RouteToTheScheduler<T>(this WolverineOptions wolverine, string queue)
    {
        wolverine.PublishMessage<T>().ToPostgresqlQueue(queue);
        // Queue notifications wake the listener at once; the polling is the fallback.
        wolverine.ListenToPostgresqlQueue(queue).ListenWithStrictOrdering().PollingInterval(5.Seconds());
    }
}
