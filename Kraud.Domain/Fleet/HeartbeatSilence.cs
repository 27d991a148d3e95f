namespace Kraud.Domain.Fleet;

/// <summary>
/// Which hosts have gone silent. A host is judged by the newest heartbeat of its own that the control plane has handled,
/// against the newest heartbeat any host sent, not against the control plane's clock: when the control plane falls behind
/// on its queue, every host looks silent by the clock, yet none is, and failing them would move the whole fleet for
/// nothing. Heartbeats wait in the queue in the order they were sent, so while it drains a live host's newest stays within
/// an interval of the fleet's newest, and only a host that stopped sending falls behind. When no heartbeat at all was
/// handled for the whole window, nobody is failed: that is the control plane's outage or the whole fleet's, where moving
/// work helps no one (Kubernetes' node controller stops evicting in a fully disrupted zone for the same reason).
/// Hosts' clocks are compared with each other, so they must agree to well within the window (NTP does); a heartbeat stamped
/// later than it was handled counts as sent when handled, so one host whose clock runs ahead cannot make the others look silent.
/// </summary>
public static class HeartbeatSilence
{
    /// <param name="LastSentAt">When the host sent its newest handled heartbeat (its registration, if it sent none yet).</param>
    /// <param name="LastHandledAt">When the control plane handled it.</param>
    public sealed record Heard(Guid HostId, DateTimeOffset LastSentAt, DateTimeOffset LastHandledAt);

    public sealed record Silent(Guid HostId, TimeSpan For);

    /// <param name="fleet">Every host heard of, failed ones included: they set the reference.</param>
    /// <param name="judged">The hosts that can fail (READY, CORDONED, DRAINING).</param>
    public static IReadOnlyList<Silent> Find(IReadOnlyCollection<Heard> fleet, IEnumerable<Heard> judged, DateTimeOffset now, TimeSpan window)
    {
        if (fleet.Count == 0 || now - fleet.Max(h => h.LastHandledAt) > window) return [];
        var newest = fleet.Max(Sent);
        return judged.Where(h => newest - Sent(h) > window).Select(h => new Silent(h.HostId, newest - Sent(h))).ToList();
    }

    private static DateTimeOffset Sent(Heard h) => h.LastSentAt < h.LastHandledAt ? h.LastSentAt : h.LastHandledAt;
}
