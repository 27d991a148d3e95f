namespace Kraud.Api.Fleet;

/// <summary>
/// What the last heartbeats of a host said. Not an event: heartbeats are frequent and carry no decision; the decisions
/// they lead to (a host failed or recovered, a VM booted again or stopped) are events.
/// </summary>
public sealed class HostLiveness
{
    public Guid Id { get; set; }
    public DateTimeOffset LastHeartbeat { get; set; }
    public DateTimeOffset LastSentAt { get; set; }
    public List<Guid> RunningVms { get; set; } = [];

    /// <summary>How many heartbeats in a row reported a VM that should not run there (or left out one that should).</summary>
    public Dictionary<Guid, int> Unknown { get; set; } = [];
    public Dictionary<Guid, int> Missing { get; set; } = [];

    /// <summary>Volume replicas that should be HEALTHY on this storage host and that its heartbeats left out.</summary>
    public Dictionary<Guid, int> MissingReplicas { get; set; } = [];

    /// <summary>One heartbeat can be older than a report it crossed on the way; two in a row are evidence.</summary>
    public const int Evidence = 2;

    /// <summary>When each VM no pod owns was told to stop, by the control plane's clock.</summary>
    public Dictionary<Guid, DateTimeOffset> StopsSent { get; set; } = [];

    /// <summary>
    /// A VM just told to stop is still listed by every heartbeat the host sent before the stop reached it: it is asked
    /// again (and recorded again) only if heartbeats sent this many intervals after the stop still list it. Counted by
    /// when a heartbeat was sent, not by how many arrived: a backlog of heartbeats on a busy control plane all predate the
    /// stop, and counting them once stopped (and recorded) a stray VM twice.
    /// </summary>
    public const int StopGrace = 10;

    /// <summary>The VMs no pod owns that a heartbeat sent at <paramref name="sentAt"/> is evidence of: not those told to stop too shortly before.</summary>
    public static IEnumerable<Guid> Strays(IEnumerable<Guid> unowned, DateTimeOffset sentAt, IReadOnlyDictionary<Guid, DateTimeOffset> stopsSent,
        TimeSpan grace) =>
        unowned.Where(vm => !(stopsSent.TryGetValue(vm, out var sent) && sentAt <= sent + grace));

    /// <summary>Counts consecutive sightings: what is seen again goes up, what is not seen any more is forgotten.</summary>
    public static Dictionary<Guid, int> Count(Dictionary<Guid, int> before, IEnumerable<Guid> seenNow) =>
        seenNow.Distinct().ToDictionary(id => id, id => before.GetValueOrDefault(id) + 1);
}
