using JasperFx.Events;
using Kraud.Domain.Common;

namespace Kraud.Projections.Common;

/// <summary>
/// Folds a decider's stream that may begin with a snapshot: once archived events left the log, a live stream's events up
/// to the cut are replaced by one <see cref="Compacted{T}"/> holding the state they folded to (LiveStreamCompaction), so
/// every fold of a decider's state (writes, time travel, the inline views and their rebuilds) starts from it.
/// </summary>
public static class Snapshots
{
    public static T Evolve<T>(T? state, IEvent e) where T : class, IState<T> =>
        e.Data is Compacted<T> compacted ? compacted.Snapshot : (state ?? T.Initial).Evolve(e.Data);

    public static T Fold<T>(IEnumerable<IEvent> events) where T : class, IState<T> => events.Aggregate(T.Initial, (state, e) => Evolve(state, e));
}
