using Kraud.Domain.Common;

namespace Kraud.Domain.Ingresses;

/// <summary>
/// Managed ingresses run as 2N+1 replicas across two zones (the product table): N+1 on distinct INGRESS hosts of one
/// zone and N on distinct INGRESS hosts of the other, so either zone alone still has a replica after N host failures.
/// The zone with more free room takes N+1. A zone that cannot take its share makes the ingress UNSCHEDULABLE.
/// </summary>
public static class IngressPlacement
{
    public static IReadOnlyList<IngressReplica> Place(int failuresTolerated, IReadOnlyList<IngressHostSlot> hosts)
    {
        var n = failuresTolerated;
        var zones = hosts.Select(h => h.Zone).Distinct().Order(StringComparer.Ordinal).ToList();
        if (zones.Count < 2)
            throw new DomainException(ErrorCode.Unschedulable,
                $"A managed ingress runs in 2 zones; INGRESS hosts exist in {zones.Count} ({string.Join(", ", zones)}).");
        var usable = zones.ToDictionary(z => z, z => hosts.Where(h => h.Zone == z && h.Free > 0)
            .OrderByDescending(h => h.Free).ThenBy(h => h.Name, StringComparer.Ordinal).ToList());
        var ranked = zones.OrderByDescending(z => usable[z].Count).ThenByDescending(z => usable[z].Sum(h => h.Free)).ThenBy(z => z, StringComparer.Ordinal)
            .Take(2).ToList();
        var (major, minor) = (ranked[0], ranked[1]);
        foreach (var (zone, need) in new[] { (major, n + 1), (minor, n) })
            if (usable[zone].Count < need)
                throw new DomainException(ErrorCode.Unschedulable,
                    $"zone {zone} has {usable[zone].Count} READY INGRESS host(s) with free capacity, {need} needed: a managed ingress tolerating " +
                    $"{n} failure(s) runs {2 * n + 1} replicas across 2 zones ({n + 1} + {n}) on distinct hosts.");
        return [.. usable[major].Take(n + 1).Concat(usable[minor].Take(n)).Select(h => new IngressReplica(h.HostId, h.Name, h.Zone))];
    }
}
