using Kraud.Domain.Confidential;
using Kraud.Domain.HostProtocol;

namespace Kraud.HostRuntime.Drivers;

/// <summary>What a hypervisor backend must do for the host runtime. Boot and stop are idempotent per VM id.</summary>
public interface IMicroVmDriver
{
    string Name { get; }

    /// <summary>Boots the VM and returns once the guest is up; throws <see cref="MicroVmBootException"/> when it cannot.</summary>
    Task<BootResult> BootAsync(MicroVmSpec spec, CancellationToken ct);

    /// <summary>Stops the VM; false when it was not running here.</summary>
    Task<bool> StopAsync(Guid vmId, CancellationToken ct);

    IReadOnlyCollection<Guid> Running { get; }

    /// <summary>
    /// A running VM died without being asked to stop (its hypervisor process exited). The VM is no longer in
    /// <see cref="Running"/> when this is raised; the host runtime reports it to the control plane as MicroVmFailed.
    /// </summary>
    event Action<MicroVmCrash>? Crashed;
}

public sealed record MicroVmCrash(Guid VmId, Guid PodId, string Reason);

/// <param name="Attestation">For a confidential guest on a SEV-SNP host: the firmware's report of what it launched.</param>
public sealed record BootResult(Guid VmId, double BootMs, bool AlreadyRunning, AttestationReport? Attestation = null);

public sealed class MicroVmBootException(string reason) : Exception(reason);
