using Kraud.Domain.Common;
using Kraud.Domain.Volumes;
using Kraud.Projections.Volumes;

namespace Kraud.Api.Gql;

/// <param name="SyncedBytes">For a replica being filled from its healthy peers (and the last figure once it is): bytes copied so far.</param>
public sealed record ReplicaDto(Guid HostId, string State, double? SyncedBytes = null, double? TotalBytes = null)
{
    /// <summary>A replica being filled by the volume's current work shows as SYNCING.</summary>
    public static ReplicaDto From(Volume volume, VolumeReplica r) => new(r.HostId,
        volume.Work?.Replica == r.HostId && r.Phase == ReplicaPhase.Provisioning ? "SYNCING" : Enums.Name(r.Phase),
        r.Resync?.SyncedBytes, r.Resync?.TotalBytes);
}

public sealed record VolumeDto(
    Guid Id, string Name, Guid TenantId, string Class, int SizeGiB, string? Zone, string State, IReadOnlyList<ReplicaDto> Replicas, int DesiredReplicas,
    bool Encrypted, IReadOnlyList<Guid> AttachedTo, int Version, string? Reason, IReadOnlyList<string> Warnings, DateTime CreatedAt, ResourceOwner? Owner,
    DateTime? LastScrubbedAt = null, bool ScrubRequested = false, string? ScrubDifference = null)
{
    public static VolumeDto From(VolumeView view) => From(view.Volume, view.Version);

    public static VolumeDto From(Volume v, int version) => new(v.Id, v.Name, v.TenantId, Enums.Name(v.Class), v.SizeGiB, v.Zone, Enums.Name(v.State),
        v.Replicas.Select(r => ReplicaDto.From(v, r)).ToList(), v.Desired, v.Encrypted,
        v.Attachments.Select(a => a.PodId).ToList(), version, v.Reason, VolumeDecider.Warnings(v.Class), v.CreatedAt.UtcDateTime, v.Owner,
        v.LastScrubbedAt?.UtcDateTime, v.ScrubRequestedAt is not null, v.ScrubDifference);
}

/// <summary>A GFS volume's file server as its clients see it: where it serves now, and how many microVMs it has had.</summary>
public sealed record FileServerDto(Guid PodId, string State, string? Address, Guid? HostId, int Generation);
