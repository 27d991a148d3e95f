using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Kraud.Domain.Confidential;
using Kraud.Domain.HostProtocol;
using Kraud.HostRuntime.Confidential;

namespace Kraud.HostRuntime.Drivers;

public sealed class SimulatedDriverOptions
{
    /// <summary>How long a simulated guest takes to come up.</summary>
    public TimeSpan BootDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The host's simulated SEV-SNP firmware; null on hosts without SEV-SNP (they cannot launch confidential guests).</summary>
    public SevSnpFirmware? SevSnp { get; set; }
}

/// <summary>
/// A hypervisor without hardware: keeps the VM table a real host would keep, takes the configured time to boot, and
/// fails on request. Tests and the default fleet use it; it never pretends a VM runs that it did not start. Keys are
/// real: each ephemeral disk gets a fresh random key that lives in memory only and is overwritten when the VM stops, and
/// the data keys of mounted volumes are held (unwrapped) while the VM runs.
/// </summary>
public sealed class SimulatedDriver(SimulatedDriverOptions options, TimeProvider time) : IMicroVmDriver
{
    private readonly ConcurrentDictionary<Guid, MicroVmSpec> _running = new();
    private readonly ConcurrentQueue<string> _bootFailures = new();
    private readonly ConcurrentDictionary<string, string> _failingImages = new();
    private readonly ConcurrentDictionary<Guid, byte[]> _ephemeralKeys = new();
    private readonly ConcurrentDictionary<Guid, IReadOnlyDictionary<Guid, byte[]>> _volumeKeys = new();
    private readonly ConcurrentQueue<Func<MicroVmSpec, MicroVmSpec>> _tamperings = new();
    private readonly ConcurrentQueue<AttestationForgery> _forgeries = new();
    private readonly EndedMicroVms _ended = new();

    public string Name => "simulated";

    public IReadOnlyCollection<Guid> Running => _running.Keys.ToList();

    /// <summary>No hypervisor, nothing to accelerate.</summary>
    public Task<Accelerator?> AcceleratorAsync(CancellationToken ct) => Task.FromResult<Accelerator?>(null);

    /// <summary>Simulated VMs never crash on their own: <see cref="Vanish"/> models a silent death, which is what reconciliation is for.</summary>
    public event Action<MicroVmCrash>? Crashed { add { } remove { } }

    public event Action<MicroVmExit>? Exited;

    public MicroVmSpec? Find(Guid vmId) => _running.GetValueOrDefault(vmId);

    /// <summary>
    /// The VM's workload exits with this code (fault injection): the VM is gone and the exit is raised as a real
    /// driver's would be. False when the VM does not run here.
    /// </summary>
    public bool ExitWorkload(Guid vmId, int exitCode)
    {
        var spec = Find(vmId);
        var hadKey = HoldsEphemeralKey(vmId);
        if (spec is null || !End(vmId)) return false;
        Exited?.Invoke(new MicroVmExit(vmId, spec.PodId, exitCode, time.GetUtcNow(), EphemeralErased: hadKey));
        return true;
    }

    /// <summary>The next <paramref name="count"/> boots on this host fail with <paramref name="reason"/>.</summary>
    public void FailNextBoots(int count, string reason)
    {
        for (var i = 0; i < count; i++) _bootFailures.Enqueue(reason);
    }

    /// <summary>Every boot of this image fails until cleared, like a broken image would.</summary>
    public void FailImage(string image, string reason) => _failingImages[image] = reason;

    public void RepairImage(string image) => _failingImages.TryRemove(image, out _);

    /// <summary>
    /// The next confidential guest is launched with a configuration other than the one the control plane sent (a host
    /// that injects something into the guest): its firmware measures what was really launched.
    /// </summary>
    public void TamperNextLaunch(Func<MicroVmSpec, MicroVmSpec> tamper) => _tamperings.Enqueue(tamper);

    /// <summary>The next confidential guest's attestation report is forged the given way.</summary>
    public void ForgeNextReport(AttestationForgery forgery) => _forgeries.Enqueue(forgery);

    public void ClearFaults()
    {
        _bootFailures.Clear();
        _failingImages.Clear();
        _tamperings.Clear();
        _forgeries.Clear();
    }

    public async Task<BootResult> BootAsync(MicroVmSpec spec, IReadOnlyDictionary<Guid, byte[]> volumeKeys, CancellationToken ct)
    {
        if (_running.ContainsKey(spec.VmId)) return new BootResult(spec.VmId, 0, AlreadyRunning: true);
        _ended.RefuseAgain(spec.VmId);
        var started = Stopwatch.GetTimestamp();
        if (options.BootDelay > TimeSpan.Zero) await Task.Delay(options.BootDelay, time, ct);
        if (_failingImages.TryGetValue(spec.Image, out var imageFault)) throw new MicroVmBootException(imageFault);
        if (_bootFailures.TryDequeue(out var fault)) throw new MicroVmBootException(fault);
        if (spec.Attachments.FirstOrDefault(v => v.FileServer is null && !volumeKeys.ContainsKey(v.VolumeId)) is { } locked)
            throw new MicroVmBootException($"no data key for volume {locked.VolumeId}");
        var launched = spec;
        AttestationReport? report = null;
        if (spec.Confidential)
        {
            var firmware = options.SevSnp ?? throw new MicroVmBootException("this host has no SEV-SNP: it cannot launch a confidential guest");
            if (_tamperings.TryDequeue(out var tamper)) launched = tamper(spec);
            report = firmware.Report(launched, _forgeries.TryDequeue(out var forgery) ? forgery : null);
        }
        if (!_running.TryAdd(spec.VmId, launched)) return new BootResult(spec.VmId, 0, AlreadyRunning: true);
        if (spec.EphemeralGiB > 0) _ephemeralKeys[spec.VmId] = RandomNumberGenerator.GetBytes(32);
        _volumeKeys[spec.VmId] = volumeKeys.ToDictionary(k => k.Key, k => k.Value.ToArray());
        // No image is pulled here: the digest the control plane resolved is what the VM records (Find shows it).
        return new BootResult(spec.VmId, Stopwatch.GetElapsedTime(started).TotalMilliseconds, AlreadyRunning: false, report, spec.EphemeralGiB,
            ImageDigest: spec.Oci?.Digest);
    }

    public Task<bool> StopAsync(Guid vmId, CancellationToken ct) => Task.FromResult(End(vmId));

    public bool HoldsEphemeralKey(Guid vmId) => _ephemeralKeys.ContainsKey(vmId);

    /// <summary>For tests: the ephemeral disk key of a running VM, and the volume keys it holds.</summary>
    public byte[]? EphemeralKeyOf(Guid vmId) => _ephemeralKeys.TryGetValue(vmId, out var key) ? key.ToArray() : null;

    /// <summary>For tests: every key this host runtime holds for its VMs now (ephemeral and volume keys).</summary>
    public IReadOnlyList<byte[]> KeysForTests() =>
        [.. _ephemeralKeys.Values.Select(k => k.ToArray()), .. _volumeKeys.Values.SelectMany(v => v.Values).Select(k => k.ToArray())];

    public byte[]? VolumeKeyOf(Guid vmId, Guid volumeId) =>
        _volumeKeys.TryGetValue(vmId, out var keys) && keys.TryGetValue(volumeId, out var key) ? key.ToArray() : null;

    /// <summary>Stopping forgets the VM and overwrites its keys: the ephemeral disk is unreadable from then on.</summary>
    private bool Remove(Guid vmId)
    {
        var removed = _running.TryRemove(vmId, out _);
        if (_ephemeralKeys.TryRemove(vmId, out var key)) CryptographicOperations.ZeroMemory(key);
        if (_volumeKeys.TryRemove(vmId, out var keys))
            foreach (var k in keys.Values) CryptographicOperations.ZeroMemory(k);
        return removed;
    }

    /// <summary>
    /// An exit or a stop, as the QEMU driver sees them: this host runtime knows the VM ended and refuses to boot it again
    /// (unlike <see cref="Vanish"/>, which it never noticed). False when the VM does not run here.
    /// </summary>
    private bool End(Guid vmId)
    {
        if (!_running.ContainsKey(vmId)) return false;
        _ended.Add(vmId);
        return Remove(vmId);
    }

    /// <summary>The VM dies without a word to anyone (its host notices only by no longer listing it).</summary>
    public bool Vanish(Guid vmId) => Remove(vmId);

    /// <summary>A VM nobody asked for appears, as one a host kept while it was cut off from the control plane.</summary>
    public void Adopt(MicroVmSpec spec) => _running[spec.VmId] = spec;

    /// <summary>Power loss: every VM is gone.</summary>
    public void LoseAll()
    {
        foreach (var vm in _running.Keys.ToList()) Remove(vm);
        _ended.Clear();
    }
}
