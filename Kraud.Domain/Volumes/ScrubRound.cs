namespace Kraud.Domain.Volumes;

/// <summary>
/// Which volumes the periodic scrub round asks to scrub now. A scrub reads every byte of every replica, so each one costs its
/// storage hosts' disks and network what the tenants' guests on them would otherwise get: a storage host takes part in at
/// most <c>perStorageHost</c> scrubs at once (those already asked for count), and the rest wait for a later round. The
/// longest uncompared go first, so that a bound that is too tight delays scrubs in turn rather than starving one volume.
/// </summary>
public static class ScrubRound
{
    /// <param name="volumes">The volumes whose scrub may be due, and those with a scrub asked for (which hold their hosts' slots).</param>
    /// <param name="perStorageHost">0 or less: no bound.</param>
    public static IReadOnlyList<Guid> Pick(IEnumerable<Volume> volumes, DateTimeOffset at, TimeSpan every, int perStorageHost)
    {
        var all = volumes.ToList();
        var busy = all.Where(v => v.ScrubRequestedAt is not null)
            .SelectMany(StorageHosts).GroupBy(h => h).ToDictionary(g => g.Key, g => g.Count());
        var picked = new List<Guid>();
        foreach (var volume in all.Where(v => v.State is VolumeState.Healthy or VolumeState.Degraded && v.ScrubDue(at, every))
                     .OrderBy(v => v.LastScrubbedAt ?? v.CreatedAt).ThenBy(v => v.Id))
        {
            var hosts = StorageHosts(volume).ToList();
            if (perStorageHost > 0 && hosts.Any(h => busy.GetValueOrDefault(h) >= perStorageHost)) continue;
            foreach (var h in hosts) busy[h] = busy.GetValueOrDefault(h) + 1;
            picked.Add(volume.Id);
        }
        return picked;
    }

    private static IEnumerable<Guid> StorageHosts(Volume v) => v.Replicas.Where(r => r.Phase != ReplicaPhase.Erasing).Select(r => r.HostId);
}
