namespace Kraud.Domain.Fleet;

/// <summary>
/// Which hosts have gone silent: those whose lease (renewed by the host runtime with every heartbeat, stamped with the
/// database's clock) is older than the window, judged against the database's clock now, so no two machines' clocks are
/// ever compared. When no host at all renewed its lease for the whole window, nobody is failed: that is an outage of the
/// database path or of the whole fleet, where moving work helps no one (Kubernetes' node controller stops evicting in a
/// fully disrupted zone for the same reason).
/// </summary>
public static class HeartbeatSilence
{
    /// <param name="LastRenewed">When the host last renewed its lease (its registration, if it never did).</param>
    public sealed record Heard(Guid HostId, DateTimeOffset LastRenewed);

    public sealed record Silent(Guid HostId, TimeSpan For);

    /// <param name="fleet">Every host, failed ones included: any renewal shows the path works.</param>
    /// <param name="judged">The hosts that can fail (READY, CORDONED, DRAINING).</param>
    /// <param name="now">The clock the leases were stamped with.</param>
    public static IReadOnlyList<Silent> Find(IReadOnlyCollection<Heard> fleet, IEnumerable<Heard> judged, DateTimeOffset now, TimeSpan window)
    {
        if (fleet.Count == 0 || now - fleet.Max(h => h.LastRenewed) > window) return [];
        return judged.Where(h => now - h.LastRenewed > window).Select(h => new Silent(h.HostId, now - h.LastRenewed)).ToList();
    }
}
