using System.Collections.Concurrent;

namespace Kraud.HostRuntime.Drivers;

/// <summary>
/// The microVMs that ran on this host and ended while this host runtime watched them (the workload exited, QEMU crashed,
/// a stop): the control plane hears of those ends and boots the replica's next generation under a new id. A boot command
/// of such a VM delivered again (delivery is at least once, and a guest whose workload exits at once ends before a
/// redelivery) must not start a second guest that nobody will stop, holding the disks the next generation opens. A VM
/// this runtime lost track of is not here: the control plane finds it missing and boots it again under its own id.
/// </summary>
internal sealed class EndedMicroVms(int capacity = 65_536)
{
    private readonly ConcurrentDictionary<Guid, byte> _ended = new();
    private readonly ConcurrentQueue<Guid> _order = new();

    public void Add(Guid vmId)
    {
        if (!_ended.TryAdd(vmId, 0)) return;
        _order.Enqueue(vmId);
        // Bounded: a redelivery comes within minutes, not after tens of thousands of later VMs.
        while (_order.Count > capacity && _order.TryDequeue(out var oldest)) _ended.TryRemove(oldest, out _);
    }

    /// <summary>Throws for a VM that already ran here and ended.</summary>
    public void RefuseAgain(Guid vmId)
    {
        if (_ended.ContainsKey(vmId))
            throw new MicroVmBootException($"microVM {vmId} already ran on this host and ended: a boot command delivered again does not start it twice");
    }

    /// <summary>A host that lost its power lost this memory too.</summary>
    public void Clear()
    {
        _ended.Clear();
        _order.Clear();
    }
}
