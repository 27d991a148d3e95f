using Kraud.Domain.Common;
using Kraud.Domain.Volumes;
using Kraud.Projections.Volumes;

namespace Kraud.Api.Gql;

public sealed record ReplicaDto(Guid HostId, string State);

public sealed record VolumeDto(
    Guid Id, string Name, Guid TenantId, string Class, int SizeGiB, string? Zone, string State, IReadOnlyList<ReplicaDto> Replicas, int DesiredReplicas,
    bool Encrypted, IReadOnlyList<Guid> AttachedTo, int Version, string? Reason, IReadOnlyList<string> Warnings, DateTime CreatedAt, ResourceOwner? Owner)
{
    public static VolumeDto From(VolumeView view) => From(view.Volume, view.Version);

    public static VolumeDto From(Volume v, int version) => new(v.Id, v.Name, v.TenantId, Enums.Name(v.Class), v.SizeGiB, v.Zone, Enums.Name(v.State),
        v.Replicas.Select(r => new ReplicaDto(r.HostId, Enums.Name(r.Phase))).ToList(), v.Desired, v.Encrypted,
        v.Attachments.Select(a => a.PodId).ToList(), version, v.Reason, VolumeDecider.Warnings(v.Class), v.CreatedAt.UtcDateTime, v.Owner);
}
