using System.Collections.Concurrent;
using System.Diagnostics;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Drivers;

public sealed class SimulatedDriverOptions
{
    /// <summary>How long a simulated guest takes to come up.</summary>
    public TimeSpan BootDelay { get; set; } = TimeSpan.FromMilliseconds(200);
}

/// <summary>
/// A hypervisor without hardware: keeps the VM table a real host would keep, takes the configured time to boot, and
/// fails on request. Tests and the default fleet use it; it never pretends a VM runs that it did not start.
/// </summary>
public sealed class SimulatedDriver(SimulatedDriverOptions options, TimeProvider time) : IMicroVmDriver
{
    private readonly ConcurrentDictionary<Guid, MicroVmSpec> _running = new();
    private readonly ConcurrentQueue<string> _bootFailures = new();
    private readonly ConcurrentDictionary<string, string> _failingImages = new();

    public string Name => "simulated";

    public IReadOnlyCollection<Guid> Running => _running.Keys.ToList();

    /// <summary>Simulated VMs never crash on their own: <see cref="Vanish"/> models a silent death, which is what reconciliation is for.</summary>
    public event Action<MicroVmCrash>? Crashed { add { } remove { } }

    public MicroVmSpec? Find(Guid vmId) => _running.GetValueOrDefault(vmId);

    /// <summary>The next <paramref name="count"/> boots on this host fail with <paramref name="reason"/>.</summary>
    public void FailNextBoots(int count, string reason)
    {
        for (var i = 0; i < count; i++) _bootFailures.Enqueue(reason);
    }

    /// <summary>Every boot of this image fails until cleared, like a broken image would.</summary>
    public void FailImage(string image, string reason) => _failingImages[image] = reason;

    public void RepairImage(string image) => _failingImages.TryRemove(image, out _);

    public void ClearFaults()
    {
        _bootFailures.Clear();
        _failingImages.Clear();
    }

    public async Task<BootResult> BootAsync(MicroVmSpec spec, CancellationToken ct)
    {
        if (_running.ContainsKey(spec.VmId)) return new BootResult(spec.VmId, 0, AlreadyRunning: true);
        var started = Stopwatch.GetTimestamp();
        if (options.BootDelay > TimeSpan.Zero) await Task.Delay(options.BootDelay, time, ct);
        if (_failingImages.TryGetValue(spec.Image, out var imageFault)) throw new MicroVmBootException(imageFault);
        if (_bootFailures.TryDequeue(out var fault)) throw new MicroVmBootException(fault);
        if (!_running.TryAdd(spec.VmId, spec)) return new BootResult(spec.VmId, 0, AlreadyRunning: true);
        return new BootResult(spec.VmId, Stopwatch.GetElapsedTime(started).TotalMilliseconds, AlreadyRunning: false);
    }

    public Task<bool> StopAsync(Guid vmId, CancellationToken ct) => Task.FromResult(_running.TryRemove(vmId, out _));

    /// <summary>The VM dies without a word to anyone (its host notices only by no longer listing it).</summary>
    public bool Vanish(Guid vmId) => _running.TryRemove(vmId, out _);

    /// <summary>A VM nobody asked for appears, as one a host kept while it was cut off from the control plane.</summary>
    public void Adopt(MicroVmSpec spec) => _running[spec.VmId] = spec;

    /// <summary>Power loss: every VM is gone.</summary>
    public void LoseAll() => _running.Clear();
}
