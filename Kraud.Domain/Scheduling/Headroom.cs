using Kraud.Domain.Fleet;

namespace Kraud.Domain.Scheduling;

/// <summary>
/// The READY compute hosts of one zone, in name order, with what their microVMs use. The sums are taken once per
/// placement, so that ranking zones, choosing hosts and the N+2 sums cost nothing per VM.
/// </summary>
internal sealed class ZoneCapacity
{
    private readonly long[] usedCpu;
    private readonly long[] usedMem;
    private IReadOnlyList<int>? all;
    private IReadOnlyList<int>? sevSnp;

    public ZoneCapacity(string name, IReadOnlyList<Host> hostsInNameOrder)
    {
        Name = name;
        Hosts = hostsInNameOrder;
        usedCpu = new long[Hosts.Count];
        usedMem = new long[Hosts.Count];
        for (var i = 0; i < Hosts.Count; i++)
            foreach (var (_, vm) in Hosts[i].Vms)
            {
                usedCpu[i] += vm.Cpu;
                usedMem[i] += vm.MemoryMiB;
            }
    }

    public string Name { get; }
    public IReadOnlyList<Host> Hosts { get; }
    public int Count => Hosts.Count;
    public IReadOnlyList<long> UsedCpu => usedCpu;
    public IReadOnlyList<long> UsedMem => usedMem;

    /// <summary>Indices of the hosts a request may be placed on: all of them, or the SEV-SNP ones for a confidential pod.</summary>
    public IReadOnlyList<int> Candidates(bool confidential) => confidential
        ? sevSnp ??= Enumerable.Range(0, Count).Where(i => Hosts[i].SevSnp).ToList()
        : all ??= Enumerable.Range(0, Count).ToList();

    public long FreeCpu(bool confidential) => Candidates(confidential).Sum(i => Hosts[i].Cpu - usedCpu[i]);
}

/// <summary>
/// N+2: the zone must absorb the loss of any two of its READY compute hosts. For every pair, the movable microVMs of the two
/// lost hosts must fit into what the other hosts have free, cpu and memory each in sum, and each of those VMs must fit on
/// at least one remaining host by itself. That is not a bin packing of the displaced VMs (exact, but far dearer); the
/// single-VM rule catches what the sums miss most often: a VM bigger than any hole left in the zone.
/// <para>
/// Limitation: a microVM of a confidential pod is never rescheduled, so it is not movable, but <see cref="HostVm"/> does not
/// say which VMs belong to confidential pods. Every VM already on a host counts as movable, which errs towards refusing; only
/// the VM being placed for a confidential request is exempt.
/// </para>
/// </summary>
internal static class Headroom
{
    /// <returns>Null if the zone, with <paramref name="placed"/> added, survives any two host failures; else what breaks, for people.</returns>
    public static string? FirstBreach(ZoneCapacity zone, IReadOnlyList<int> placed, int cpu, int memoryMiB, bool placedAreMovable)
    {
        var n = zone.Count;
        // One host has no pair to lose. Ordinary pods never get here: they need three hosts.
        if (n < 2) return null;

        var movableCpu = new long[n];
        var movableMem = new long[n];
        var freeCpu = new long[n];
        var freeMem = new long[n];
        for (var i = 0; i < n; i++)
        {
            movableCpu[i] = zone.UsedCpu[i];
            movableMem[i] = zone.UsedMem[i];
            freeCpu[i] = zone.Hosts[i].Cpu - zone.UsedCpu[i];
            freeMem[i] = zone.Hosts[i].MemoryMiB - zone.UsedMem[i];
        }
        foreach (var i in placed)
        {
            freeCpu[i] -= cpu;
            freeMem[i] -= memoryMiB;
            if (!placedAreMovable) continue;
            movableCpu[i] += cpu;
            movableMem[i] += memoryMiB;
        }

        return SumBreach(zone, movableCpu, freeCpu, "cpu")
               ?? SumBreach(zone, movableMem, freeMem, "MiB")
               ?? SingleVmBreach(zone, placedAreMovable ? placed : [], cpu, memoryMiB, freeCpu, freeMem);
    }

    /// <summary>
    /// Losing a and b moves movable[a] + movable[b] into total − free[a] − free[b], so the pair breaks the zone exactly when
    /// (movable[a] + free[a]) + (movable[b] + free[b]) exceeds the zone's total free. The worst pair is therefore the two
    /// largest of those sums: one pass instead of one per pair.
    /// </summary>
    private static string? SumBreach(ZoneCapacity zone, long[] movable, long[] free, string unit)
    {
        var total = free.Sum();
        int a = -1, b = -1;
        for (var i = 0; i < movable.Length; i++)
        {
            // Strictly greater: among equals the host first in name order is named, whatever the fleet's order was.
            if (a < 0 || movable[i] + free[i] > movable[a] + free[a]) (a, b) = (i, a);
            else if (b < 0 || movable[i] + free[i] > movable[b] + free[b]) b = i;
        }
        if (movable[a] + free[a] + movable[b] + free[b] <= total) return null;
        return $"if hosts {zone.Hosts[a].Name} and {zone.Hosts[b].Name} failed, their {movable[a] + movable[b]} {unit} would not fit into the " +
               $"{total - free[a] - free[b]} {unit} free on {Others(movable.Length - 2)} of zone {zone.Name}";
    }

    /// <summary>
    /// A VM on host a can go to the hosts with room for it, other than a. With two or more of them, no second failure
    /// leaves it homeless; with one, the pair {a, that host} does; with none, losing a alone does.
    /// </summary>
    private static string? SingleVmBreach(ZoneCapacity zone, IReadOnlyList<int> placed, int cpu, int memoryMiB, long[] freeCpu, long[] freeMem)
    {
        // Pods come in few shapes, so the hosts with room are looked up once per shape; three are enough to know that two
        // of them are not the VM's own host. This runs for every VM of the zone on every placement: no allocation per VM.
        var roomFor = new Dictionary<(int Cpu, int Mem), (int, int, int)>();
        for (var a = 0; a < zone.Count; a++)
        {
            (int Cpu, int Mem, int Partner)? worst = null;
            foreach (var (_, vm) in zone.Hosts[a].Vms) Consider(a, vm.Cpu, vm.MemoryMiB, ref worst);
            foreach (var i in placed)
                if (i == a) Consider(a, cpu, memoryMiB, ref worst);
            if (worst is not { } breach) continue;
            var vmText = $"{breach.Cpu} cpu and {breach.Mem} MiB";
            return breach.Partner < 0
                ? $"if host {zone.Hosts[a].Name} failed, its microVM of {vmText} could not be re-placed: no other host of zone {zone.Name} has {vmText} free"
                : $"if hosts {zone.Hosts[a].Name} and {zone.Hosts[breach.Partner].Name} failed, the microVM of {vmText} on {zone.Hosts[a].Name} " +
                  $"could not be re-placed: {zone.Hosts[breach.Partner].Name} is the only other host of zone {zone.Name} with {vmText} free";
        }
        return null;

        void Consider(int host, int vmCpu, int vmMem, ref (int Cpu, int Mem, int Partner)? worst)
        {
            if (!roomFor.TryGetValue((vmCpu, vmMem), out var room))
                roomFor[(vmCpu, vmMem)] = room = FirstThreeWithRoom(vmCpu, vmMem);
            int others = 0, partner = -1;
            foreach (var i in (ReadOnlySpan<int>)[room.Item1, room.Item2, room.Item3])
            {
                if (i < 0 || i == host) continue;
                if (others++ == 0) partner = i;
            }
            if (others >= 2) return;
            var candidate = (vmCpu, vmMem, partner);
            if (worst is not { } w || Worse(candidate, w)) worst = candidate;
        }

        (int, int, int) FirstThreeWithRoom(int vmCpu, int vmMem)
        {
            Span<int> found = [-1, -1, -1];
            for (int i = 0, n = 0; i < zone.Count && n < 3; i++)
                if (freeCpu[i] >= vmCpu && freeMem[i] >= vmMem) found[n++] = i;
            return (found[0], found[1], found[2]);
        }

        // Homeless after one failure is worse than after two; then the first partner by name, then the biggest VM.
        static bool Worse((int Cpu, int Mem, int Partner) x, (int Cpu, int Mem, int Partner) than) =>
            x.Partner != than.Partner ? (x.Partner < 0 || (than.Partner >= 0 && x.Partner < than.Partner))
            : x.Cpu != than.Cpu ? x.Cpu > than.Cpu
            : x.Mem > than.Mem;
    }

    private static string Others(int count) => count switch
    {
        0 => "no other host",
        1 => "the other host",
        _ => $"the other {count} hosts",
    };
}
