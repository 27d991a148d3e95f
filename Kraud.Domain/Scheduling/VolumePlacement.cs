using Kraud.Domain.Fleet;
using Kraud.Domain.Volumes;

namespace Kraud.Domain.Scheduling;

/// <summary>
/// Where a volume's replicas live. Pure and deterministic, like pod placement:
/// <list type="bullet">
/// <item>One zone per volume: the zone it already has (requested, or where its first replicas went); else the zone whose
/// READY storage hosts can take every replica and have the most free room (ties by name).</item>
/// <item>Every replica on a distinct READY STORAGE host with room for the whole volume, never on a host that already holds
/// one of its copies or on which one failed; the emptiest host wins.</item>
/// <item>A first placement takes all replicas or none; a re-replication takes what it can, the rest waits.</item>
/// </list>
/// </summary>
public static class VolumePlacement
{
    public sealed record Result(IReadOnlyList<ReplicaHost> Hosts, string? Refusal);

    public static Result Place(Volume volume, IEnumerable<Host> fleet)
    {
        var missing = volume.Unplaced;
        if (missing == 0) return new Result([], null);
        var storage = fleet.Where(h => h is { Exists: true, Role: HostRole.Storage, State: HostState.Ready })
            .OrderBy(h => h.Name, StringComparer.Ordinal).ThenBy(h => h.Id).ToList();
        bool Fits(Host h) => h.NvmeGiB - h.StorageUsedGiB >= volume.SizeGiB && volume.Replica(h.Id) is null && !volume.FailedOn.Contains(h.Id)
                             && !h.Replicas.ContainsKey(volume.Id);

        var zones = storage.GroupBy(h => h.Zone, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Where(Fits).ToList(), StringComparer.Ordinal);
        var first = volume.Replicas.IsEmpty;
        if (volume.Zone is { } zone)
        {
            var candidates = zones.GetValueOrDefault(zone) ?? [];
            if (candidates.Count == 0 || (first && candidates.Count < missing))
                return new Result([], Shortfall(volume, zone, candidates.Count, missing));
            return new Result(Choose(candidates, missing, zone), null);
        }

        var best = zones
            .Where(z => z.Value.Count >= missing)
            .OrderByDescending(z => z.Value.Sum(h => (long)h.NvmeGiB - h.StorageUsedGiB))
            .ThenBy(z => z.Key, StringComparer.Ordinal)
            .FirstOrDefault();
        if (best.Value is null)
            return new Result([], zones.Count == 0
                ? "No READY storage host in any zone."
                : $"No zone has {missing} READY storage hosts with {volume.SizeGiB} GiB free each: " +
                  string.Join(", ", zones.OrderBy(z => z.Key, StringComparer.Ordinal).Select(z => $"{z.Key} has {z.Value.Count}")) + ".");
        return new Result(Choose(best.Value, missing, best.Key), null);
    }

    private static List<ReplicaHost> Choose(List<Host> candidates, int count, string zone) =>
        candidates
            .OrderByDescending(h => (long)h.NvmeGiB - h.StorageUsedGiB)
            .ThenBy(h => h.Name, StringComparer.Ordinal)
            .Take(count)
            .Select(h => new ReplicaHost(h.Id, h.Name, zone))
            .ToList();

    private static string Shortfall(Volume volume, string zone, int found, int missing) =>
        $"Zone {zone} has {found} READY storage host{(found == 1 ? "" : "s")} with {volume.SizeGiB} GiB free that hold{(found == 1 ? "s" : "")} no copy of " +
        $"this volume; {missing} {(missing == 1 ? "is" : "are")} needed ({volume.Desired} replicas on distinct storage hosts in one zone).";
}
