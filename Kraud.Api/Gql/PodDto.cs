using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;

namespace Kraud.Api.Gql;

public sealed record MicroVmDto(Guid Id, Guid PodId, Guid HostId, string State, double? BootMs, string? Ip6, string? Ip4, DateTime? StartedAt,
    int EphemeralGiB, bool EphemeralEncrypted, int? ExitCode = null, DateTime? ExitedAt = null, double? ImageDownloadedBytes = null);

public sealed record PodVolumeDto(Guid VolumeId, string MountPath, bool ReadOnly);

public sealed record AttestationDto(string Measurement, bool Verified, DateTime? VerifiedAt);

public sealed record PodDto(
    Guid Id, string Name, string Namespace, Guid TenantId, string Image, int Cpu, int MemoryMiB, int Replicas, bool Confidential,
    string State, string? Reason, int Version, DateTime CreatedAt, IReadOnlyList<MicroVmDto> Instances, AttestationDto? Attestation,
    IReadOnlyList<PodVolumeDto> Volumes, ResourceOwner? Owner = null, IReadOnlyList<string>? Command = null,
    IReadOnlyDictionary<string, string>? Env = null, string? ImageDigest = null)
{
    public static PodDto From(PodView view) => From(view.Pod, view.Version);

    public static PodDto From(Pod pod, int version) => new(pod.Id, pod.Spec.Name, pod.Spec.Namespace, pod.TenantId, pod.Spec.Image,
        pod.Spec.Cpu, pod.Spec.MemoryMiB, pod.Replicas, pod.Spec.Confidential, Enums.Name(pod.State), pod.Reason, version,
        pod.CreatedAt.UtcDateTime, pod.Instances.Select(i => MicroVm(pod, i)).ToList(),
        pod.Attestation is { } a ? new AttestationDto(a.Measurement, a.Verified, a.VerifiedAt?.UtcDateTime) : null,
        pod.Spec.Mounts.Select(m => new PodVolumeDto(m.VolumeId, m.MountPath, m.ReadOnly)).ToList(), pod.Owner, pod.Spec.Command, pod.Spec.Env,
        pod.Image?.Digest);

    public static MicroVmDto MicroVm(Pod pod, PodInstance i) =>
        new(i.VmId, pod.Id, i.HostId, VmState(i.Phase), i.BootMs, Held(i, i.Ip6), Held(i, i.Ip4), i.StartedAt?.UtcDateTime, pod.Spec.EphemeralGiB,
            i.EphemeralEncrypted, i.ExitCode, i.ExitCode is null ? null : i.FailedAt?.UtcDateTime, i.ImageDownloadedBytes);

    /// <summary>A failed microVM gave its addresses back (they may belong to another one now).</summary>
    private static string? Held(PodInstance i, string? address) => i.Phase == VmPhase.Failed ? null : address;

    private static string VmState(VmPhase phase) => phase switch
    {
        VmPhase.Scheduled => "SCHEDULED",
        VmPhase.Booting => "BOOTING",
        VmPhase.Running => "RUNNING",
        VmPhase.Failed => "FAILED",
        VmPhase.Stopping => "STOPPING",
        _ => throw new ArgumentOutOfRangeException(nameof(phase)),
    };
}
