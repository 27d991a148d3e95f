using Kraud.Domain.Fleet;

namespace Kraud.Domain.Scheduling;

public sealed record PlacementRequest(Guid PodId, IReadOnlyList<int> Replicas, int Cpu, int MemoryMiB, string? Zone, bool Confidential,
    IReadOnlyCollection<Guid> HostsInUse);

public abstract record PlacementResult;
public sealed record Placed(IReadOnlyList<(int Replica, Host Host)> Hosts) : PlacementResult;
public sealed record Unschedulable(string Reason) : PlacementResult;

/// <summary>
/// The first scheduler: pure and deterministic (same fleet, same request, same answer). Replicas of one pod go to
/// distinct READY compute hosts with room for them; the emptiest host wins so that load spreads, and SEV-SNP hosts are
/// kept for confidential pods unless nothing else fits. All replicas are placed or none.
/// </summary>
public static class Placement
{
    public static PlacementResult Place(PlacementRequest request, IEnumerable<Host> fleet)
    {
        var candidates = fleet
            .Where(h => h.Exists && h.Role == HostRole.Compute && h.State == HostState.Ready)
            .Where(h => request.Zone is null || h.Zone == request.Zone)
            .Where(h => !request.Confidential || h.SevSnp)
            .ToList();
        if (candidates.Count == 0)
            return new Unschedulable(NoHostsReason(request));

        var used = candidates.ToDictionary(h => h.Id, h => (cpu: h.CpuUsed, mem: h.MemoryUsedMiB));
        var taken = new HashSet<Guid>(request.HostsInUse);
        var result = new List<(int, Host)>();
        foreach (var replica in request.Replicas)
        {
            var host = candidates
                .Where(h => !taken.Contains(h.Id))
                .Where(h => h.Cpu - used[h.Id].cpu >= request.Cpu && h.MemoryMiB - used[h.Id].mem >= request.MemoryMiB)
                .OrderBy(h => h.SevSnp && !request.Confidential)
                .ThenByDescending(h => h.Cpu - used[h.Id].cpu)
                .ThenByDescending(h => h.MemoryMiB - used[h.Id].mem)
                .ThenBy(h => h.Name, StringComparer.Ordinal)
                .FirstOrDefault();
            if (host is null)
                return new Unschedulable(
                    $"No host fits replica {replica}: it needs {request.Cpu} cpu and {request.MemoryMiB} MiB free on a READY " +
                    $"{(request.Confidential ? "SEV-SNP " : "")}compute host{(request.Zone is null ? "" : $" in zone {request.Zone}")} " +
                    $"that runs no other replica of this pod; {candidates.Count} such hosts exist, {taken.Count} already run one.");
            taken.Add(host.Id);
            used[host.Id] = (used[host.Id].cpu + request.Cpu, used[host.Id].mem + request.MemoryMiB);
            result.Add((replica, host));
        }
        return new Placed(result);
    }

    private static string NoHostsReason(PlacementRequest r) => r.Confidential
        ? $"No READY compute host with AMD SEV-SNP{(r.Zone is null ? "" : $" in zone {r.Zone}")}: Confidential Compute runs only on SEV-SNP hosts."
        : $"No READY compute host{(r.Zone is null ? "" : $" in zone {r.Zone}")}.";
}
