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
}

public sealed record BootResult(Guid VmId, double BootMs, bool AlreadyRunning);

public sealed class MicroVmBootException(string reason) : Exception(reason);
