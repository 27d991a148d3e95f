using Kraud.Domain.Fleet;

namespace Kraud.Domain.Scheduling;

/// <param name="EnforceNPlus2">
/// false where the reserve for two host failures must not stand in the way: when replicas lost to a failed host are
/// placed again (that is what the reserve is for), and on lab fleets too small for it.
/// </param>
public sealed record PlacementRequest(Guid PodId, IReadOnlyList<int> Replicas, int Cpu, int MemoryMiB, string? Zone, bool Confidential,
    IReadOnlyCollection<Guid> HostsInUse, bool EnforceNPlus2 = true);

public abstract record PlacementResult;
public sealed record Placed(IReadOnlyList<(int Replica, Host Host)> Hosts) : PlacementResult;
public sealed record Unschedulable(string Reason) : PlacementResult;

/// <summary>
/// The scheduler: pure and deterministic (same fleet, same request, same answer, whatever order the fleet comes in).
/// <list type="bullet">
/// <item>One zone per pod ("N+2 hosts in 1 zone"): the requested zone, else the zone of the pod's running replicas, else the
/// zone with the most free cpu that can take the whole request (ties by zone name).</item>
/// <item>Replicas go to distinct READY compute hosts with room; the emptiest host wins so that load spreads, and SEV-SNP
/// hosts are kept for confidential pods unless nothing else fits. All replicas are placed or none.</item>
/// <item>N+2 (see <see cref="Headroom"/>): an ordinary pod has at most (hosts of the zone − 2) replicas, and after placing it
/// the zone must still absorb the loss of any two of its hosts. Confidential pods (one replica, never rescheduled) only
/// need a SEV-SNP host with room, but may not use up the reserve a zone keeps for the others.</item>
/// </list>
/// </summary>
public static class Placement
{
    public static PlacementResult Place(PlacementRequest request, IEnumerable<Host> fleet)
    {
        // Sorting once makes every later tie-break independent of the order the caller enumerates the fleet in.
        var hosts = fleet.Where(h => h.Exists).OrderBy(h => h.Name, StringComparer.Ordinal).ThenBy(h => h.Id).ToList();
        var zones = hosts
            .Where(h => h.Role == HostRole.Compute && h.State == HostState.Ready)
            .GroupBy(h => h.Zone, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => new ZoneCapacity(g.Key, g.ToList()), StringComparer.Ordinal);

        if (request.Zone is not null)
            return zones.TryGetValue(request.Zone, out var requested) ? PlaceIn(request, requested) : new Unschedulable(NoHostsReason(request, request.Zone));

        if (ZoneOfRunningReplicas(request, hosts) is { } pinned)
        {
            var result = zones.TryGetValue(pinned, out var zone) ? PlaceIn(request, zone) : new Unschedulable(NoHostsReason(request, pinned));
            return result is Unschedulable u
                ? new Unschedulable($"The pod's running replicas are in zone {pinned}, so new ones must go there too. {u.Reason}")
                : result;
        }

        var ranked = zones.Values
            .Select(z => (Zone: z, FreeCpu: z.FreeCpu(request.Confidential)))
            .Where(z => z.Zone.Candidates(request.Confidential).Count > 0)
            .OrderByDescending(z => z.FreeCpu)
            .ThenBy(z => z.Zone.Name, StringComparer.Ordinal)
            .ToList();
        if (ranked.Count == 0)
            return new Unschedulable(NoHostsReason(request, null));

        Unschedulable? best = null;
        foreach (var (zone, _) in ranked)
        {
            var result = PlaceIn(request, zone);
            if (result is Placed) return result;
            best ??= (Unschedulable)result;
        }
        return ranked.Count == 1
            ? best!
            : new Unschedulable($"None of the {ranked.Count} zones with a READY {(request.Confidential ? "SEV-SNP " : "")}compute host can take this pod; " +
                                $"the best candidate, zone {ranked[0].Zone.Name} with {ranked[0].FreeCpu} cpu free, refuses it. {best!.Reason}");
    }

    /// <summary>
    /// Where the pod's running replicas are. They are all in one zone, unless a scheduler before the one-zone rule spread
    /// them; then the zone holding most of them keeps the damage smallest. Hosts the fleet no longer knows say nothing.
    /// </summary>
    private static string? ZoneOfRunningReplicas(PlacementRequest request, IReadOnlyList<Host> hosts)
    {
        if (request.HostsInUse.Count == 0) return null;
        var inUse = request.HostsInUse.ToHashSet();
        return hosts.Where(h => inUse.Contains(h.Id))
            .GroupBy(h => h.Zone, StringComparer.Ordinal)
            .OrderByDescending(g => g.Count())
            .ThenBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => g.Key)
            .FirstOrDefault();
    }

    private static PlacementResult PlaceIn(PlacementRequest request, ZoneCapacity zone)
    {
        var candidates = zone.Candidates(request.Confidential);
        if (candidates.Count == 0)
            return new Unschedulable(NoHostsReason(request, zone.Name));

        // Confidential pods are never rescheduled, so the distinct-hosts-after-two-failures rule has nothing to protect.
        var replicas = request.Replicas.Count + request.HostsInUse.Distinct().Count();
        if (request.EnforceNPlus2 && !request.Confidential && replicas > zone.Count - 2)
            return new Unschedulable(zone.Count < 3
                ? $"N+2: zone {zone.Name} has only {zone.Count} READY compute host{Plural(zone.Count)} and so takes no pods but confidential ones: " +
                  $"replicas must stay on distinct hosts after any two hosts fail, which needs at least 3 hosts " +
                  $"({replicas + 2} for this pod of {replicas} replica{Plural(replicas)})."
                : $"N+2: a pod of {replicas} replica{Plural(replicas)} needs at least {replicas + 2} READY compute hosts in its zone, so that its " +
                  $"replicas stay on distinct hosts after any two hosts fail; zone {zone.Name} has {zone.Count}.");

        var freeCpu = zone.Hosts.Select((h, i) => (long)h.Cpu - zone.UsedCpu[i]).ToArray();
        var freeMem = zone.Hosts.Select((h, i) => (long)h.MemoryMiB - zone.UsedMem[i]).ToArray();
        var taken = request.HostsInUse.ToHashSet();
        var chosen = new List<int>(request.Replicas.Count);
        foreach (var replica in request.Replicas)
        {
            var best = -1;
            foreach (var i in candidates)
            {
                if (taken.Contains(zone.Hosts[i].Id) || freeCpu[i] < request.Cpu || freeMem[i] < request.MemoryMiB) continue;
                if (best < 0 || Emptier(i, best)) best = i;
            }
            if (best < 0)
                return new Unschedulable(
                    $"No host fits replica {replica}: it needs {request.Cpu} cpu and {request.MemoryMiB} MiB free on a READY " +
                    $"{(request.Confidential ? "SEV-SNP " : "")}compute host in zone {zone.Name} that runs no other replica of this pod; " +
                    $"{candidates.Count} such hosts exist, {candidates.Count(i => taken.Contains(zone.Hosts[i].Id))} already run one.");
            taken.Add(zone.Hosts[best].Id);
            freeCpu[best] -= request.Cpu;
            freeMem[best] -= request.MemoryMiB;
            chosen.Add(best);
        }

        if (request.EnforceNPlus2 && ReserveRefusal(request, zone, chosen) is { } refusal) return refusal;

        return new Placed(request.Replicas.Select((replica, k) => (replica, zone.Hosts[chosen[k]])).ToList());

        bool Emptier(int i, int than)
        {
            var sevI = zone.Hosts[i].SevSnp && !request.Confidential;
            var sevThan = zone.Hosts[than].SevSnp && !request.Confidential;
            if (sevI != sevThan) return !sevI;
            if (freeCpu[i] != freeCpu[than]) return freeCpu[i] > freeCpu[than];
            // Equal free memory keeps the earlier host, and hosts are in name order.
            return freeMem[i] > freeMem[than];
        }
    }

    /// <summary>Why placing on <paramref name="chosen"/> would spend the room the zone keeps for two host failures, or null.</summary>
    private static Unschedulable? ReserveRefusal(PlacementRequest request, ZoneCapacity zone, IReadOnlyList<int> chosen)
    {
        if (request.Confidential)
        {
            // A zone that cannot absorb two failures already (fewer than three hosts, or degraded) has no reserve a
            // confidential pod could take, and refusing it would not give the others one.
            if (Headroom.FirstBreach(zone, [], request.Cpu, request.MemoryMiB, placedAreMovable: false) is null
                && Headroom.FirstBreach(zone, chosen, request.Cpu, request.MemoryMiB, placedAreMovable: false) is { } breach)
                return new Unschedulable(
                    $"N+2: this confidential pod ({request.Cpu} cpu, {request.MemoryMiB} MiB) on {HostNames(zone, chosen)} would take the room zone " +
                    $"{zone.Name} keeps for the loss of two hosts: {breach}.");
            return null;
        }
        return Headroom.FirstBreach(zone, chosen, request.Cpu, request.MemoryMiB, placedAreMovable: true) is { } ordinaryBreach
            ? new Unschedulable(
                $"N+2: placing {chosen.Count} replica{Plural(chosen.Count)} of {request.Cpu} cpu and {request.MemoryMiB} MiB on {HostNames(zone, chosen)} " +
                $"would leave zone {zone.Name} unable to absorb the loss of two hosts: {ordinaryBreach}.")
            : null;
    }

    private static string HostNames(ZoneCapacity zone, IEnumerable<int> hosts) => string.Join(", ", hosts.Select(i => zone.Hosts[i].Name));

    private static string Plural(int n) => n == 1 ? "" : "s";

    private static string NoHostsReason(PlacementRequest r, string? zone) => r.Confidential
        ? $"No READY compute host with AMD SEV-SNP{(zone is null ? "" : $" in zone {zone}")}: Confidential Compute runs only on SEV-SNP hosts."
        : $"No READY compute host{(zone is null ? "" : $" in zone {zone}")}.";
}
