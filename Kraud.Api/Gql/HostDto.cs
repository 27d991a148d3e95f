using Kraud.Domain.Pods;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Gql;

public sealed record HostDto(
    Guid Id, string Name, string Zone, string Rack, string Role, string State, bool SevSnp, int Cpu, int MemoryMiB, int CpuUsed,
    int MemoryUsedMiB, DateTime? LastHeartbeat, string? WireguardPublicKey, IReadOnlyList<MicroVmDto> MicroVms, string? Accelerator,
    string? AcceleratorReason)
{
    public static HostDto From(Host host, IReadOnlyDictionary<Guid, Pod> pods, DateTimeOffset? lastHeartbeat) =>
        new(host.Id, host.Name, host.Zone, host.Rack, Enums.Name(host.Role), Enums.Name(host.State), host.SevSnp, host.Cpu, host.MemoryMiB,
            host.CpuUsed, host.MemoryUsedMiB, lastHeartbeat?.UtcDateTime, host.WireGuardPublicKey,
            host.Vms.Values
                .Select(vm => pods.GetValueOrDefault(vm.PodId) is { } pod && pod.Instance(vm.VmId) is { } i ? PodDto.MicroVm(pod, i) : null)
                .OfType<MicroVmDto>()
                .ToList(),
            host.Accelerator, host.AcceleratorReason);
}
