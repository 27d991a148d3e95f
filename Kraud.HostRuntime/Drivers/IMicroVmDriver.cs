using Kraud.Domain.Confidential;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Drivers;

/// <summary>What a hypervisor backend must do for the host runtime. Boot and stop are idempotent per VM id.</summary>
public interface IMicroVmDriver
{
    string Name { get; }

    /// <summary>Boots the VM and returns once the guest is up; throws <see cref="MicroVmBootException"/> when it cannot.</summary>
    /// <param name="volumeKeys">The unwrapped data keys of the volumes it mounts, by volume id; the driver keeps copies for
    /// as long as the VM runs.</param>
    Task<BootResult> BootAsync(MicroVmSpec spec, IReadOnlyDictionary<Guid, byte[]> volumeKeys, CancellationToken ct);

    /// <summary>The VM's ephemeral disk key is still in this host runtime's memory.</summary>
    bool HoldsEphemeralKey(Guid vmId);

    /// <summary>
    /// Stops the VM and returns once its hypervisor process is gone; false when it was not running here. Throws
    /// <see cref="Qemu.ProcessSurvivedKillException"/> while a killed hypervisor lives on: the stop is not done then.
    /// </summary>
    Task<bool> StopAsync(Guid vmId, CancellationToken ct);

    IReadOnlyCollection<Guid> Running { get; }

    /// <summary>How this driver's guests are accelerated (decided once, on first use); null for drivers without a hypervisor.</summary>
    Task<Accelerator?> AcceleratorAsync(CancellationToken ct);

    /// <summary>
    /// A running VM died without being asked to stop (its hypervisor process exited). The VM is no longer in
    /// <see cref="Running"/> when this is raised; the host runtime reports it to the control plane as MicroVmFailed.
    /// </summary>
    event Action<MicroVmCrash>? Crashed;

    /// <summary>
    /// A VM's workload exited (and the VM with it). The VM is no longer in <see cref="Running"/> when this is raised; the
    /// host runtime reports it to the control plane as MicroVmExited.
    /// </summary>
    event Action<MicroVmExit>? Exited;
}

/// <summary>How a hypervisor runs guest code on this host (KVM or TCG), and why it was chosen; operators see both with the host.</summary>
/// <param name="Forced">The configuration chose it, not a probe.</param>
public sealed record Accelerator(bool Kvm, string Reason, bool Forced = false)
{
    public string Name => Kvm ? "KVM" : "TCG";

    public override string ToString() => $"{Name} ({Reason})";
}

public sealed record MicroVmCrash(Guid VmId, Guid PodId, string Reason);

/// <param name="EphemeralErased">The VM's ephemeral data key was destroyed with it.</param>
public sealed record MicroVmExit(Guid VmId, Guid PodId, int ExitCode, DateTimeOffset ExitedAt, bool EphemeralErased);

/// <param name="Attestation">For a confidential guest on a SEV-SNP host: the firmware's report of what it launched.</param>
/// <param name="EncryptedEphemeralGiB">Size of the ephemeral disk set up encrypted with a key held only in memory; 0 when none.</param>
/// <param name="ImageDigest">The manifest digest of the image the VM runs, as the host verified it (null without an image).</param>
/// <param name="DownloadedBytes">What this boot downloaded for its image (0: the host's cache held it).</param>
public sealed record BootResult(Guid VmId, double BootMs, bool AlreadyRunning, AttestationReport? Attestation = null, int EncryptedEphemeralGiB = 0,
    string? ImageDigest = null, long DownloadedBytes = 0);

public sealed class MicroVmBootException(string reason) : Exception(reason);

public static class MicroVmDrivers
{
    /// <summary>Boots a VM that mounts no volumes.</summary>
    public static Task<BootResult> BootAsync(this IMicroVmDriver driver, MicroVmSpec spec, CancellationToken ct) =>
        driver.BootAsync(spec, new Dictionary<Guid, byte[]>(), ct);
}
