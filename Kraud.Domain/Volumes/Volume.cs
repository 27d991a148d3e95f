using System.Collections.Immutable;
using Kraud.Domain.Common;

namespace Kraud.Domain.Volumes;

public enum ReplicaPhase { Provisioning, Healthy, Failed, Erasing }

public sealed record VolumeReplica(Guid HostId, string HostName, ReplicaPhase Phase, bool MakesKey, bool Encrypted, DateTimeOffset Since);

public sealed record VolumeAttachment(Guid PodId, string MountPath, bool ReadOnly);

public sealed record Volume(
    Guid Id, Guid TenantId, string Name, VolumeClass Class, int SizeGiB, string? Zone, bool Exists, bool Deleting, bool Deleted,
    Guid? KeyId, ImmutableList<VolumeReplica> Replicas, ImmutableList<VolumeAttachment> Attachments, string? PlacementRefusal,
    bool WasHealthy, DateTimeOffset CreatedAt) : IState<Volume>
{
    public static Volume Initial { get; } = new(Guid.Empty, Guid.Empty, "", VolumeClass.Block, 0, null, false, false, false, null, [], [], null, false,
        default);

    /// <summary>Hosts a replica of this volume failed on: placement does not pick them again for it.</summary>
    public ImmutableHashSet<Guid> FailedOn { get; init; } = [];

    public Common.ResourceOwner? Owner { get; init; }

    /// <summary>The product table: BLOCK and GFS keep three copies in one zone, RED two.</summary>
    public static int DesiredReplicas(VolumeClass c) => c switch
    {
        VolumeClass.Block or VolumeClass.Gfs => 3,
        VolumeClass.Red => 2,
        _ => 0,
    };

    public int Desired => DesiredReplicas(Class);

    public int Healthy => Replicas.Count(r => r.Phase == ReplicaPhase.Healthy);

    /// <summary>Replicas the scheduler still has to find a storage host for.</summary>
    public int Unplaced => Deleting || !Exists ? 0 : Math.Max(0, Desired - Replicas.Count(r => r.Phase != ReplicaPhase.Erasing));

    /// <summary>
    /// Healthy when every copy is; once it has been healthy, a majority of healthy copies keeps it usable (DEGRADED) and
    /// fewer make it UNAVAILABLE. Before that it is PENDING until placed and PROVISIONING until every copy is ready.
    /// </summary>
    public VolumeState State
    {
        get
        {
            if (Deleted) return VolumeState.Deleted;
            if (Deleting) return VolumeState.Unavailable;
            if (Healthy == Desired) return VolumeState.Healthy;
            if (!WasHealthy) return Replicas.IsEmpty ? VolumeState.Pending : VolumeState.Provisioning;
            return Healthy * 2 > Desired ? VolumeState.Degraded : VolumeState.Unavailable;
        }
    }

    /// <summary>Pods may start with it: its data is reachable through a majority of healthy copies.</summary>
    public bool Usable => State is VolumeState.Healthy or VolumeState.Degraded;

    public string? Reason => State switch
    {
        VolumeState.Unavailable when Deleting => "being deleted: the data keys are destroyed on every replica",
        VolumeState.Unavailable => $"only {Healthy} of {Desired} replicas are healthy, fewer than a majority: pods that need this volume do not start",
        VolumeState.Degraded => $"{Healthy} of {Desired} replicas are healthy; " +
                                (PlacementRefusal is null ? "the missing ones are being re-replicated" : $"no replacement can be placed: {PlacementRefusal}"),
        VolumeState.Pending or VolumeState.Provisioning when PlacementRefusal is not null => PlacementRefusal,
        _ => null,
    };

    /// <summary>Every healthy copy was encrypted by its host runtime, which said so; nothing is assumed.</summary>
    public bool Encrypted => KeyId is not null && Healthy > 0 && Replicas.Where(r => r.Phase == ReplicaPhase.Healthy).All(r => r.Encrypted);

    public VolumeReplica? Replica(Guid hostId) => Replicas.FirstOrDefault(r => r.HostId == hostId);

    public Volume Evolve(object @event) => @event switch
    {
        VolumeRequested e => new Volume(e.VolumeId, e.TenantId, e.Name, e.Class, e.SizeGiB, e.Zone, true, false, false, null, [], [], null, false, e.At),
        VolumeOwnedBy e => this with { Owner = e.Owner },
        VolumePlacementRefused e => this with { PlacementRefusal = e.Reason },
        VolumeReplicaScheduled e => this with
        {
            Zone = e.Zone,
            PlacementRefusal = null,
            Replicas = Replicas.Add(new VolumeReplica(e.HostId, e.HostName, ReplicaPhase.Provisioning, e.MakesKey, false, e.At)),
        },
        VolumeKeyCreated e => this with { KeyId = e.KeyId },
        VolumeReplicaHealthy e => Update(e.HostId, r => r with { Phase = ReplicaPhase.Healthy, Encrypted = e.Encrypted, Since = e.At }).NoteHealth(),
        VolumeReplicaFailed e => this with { Replicas = Replicas.RemoveAll(r => r.HostId == e.HostId), FailedOn = FailedOn.Add(e.HostId) },
        VolumeReplicaLost e => this with { Replicas = Replicas.RemoveAll(r => r.HostId == e.HostId), FailedOn = FailedOn.Add(e.HostId) },
        VolumeAttached e => this with { Attachments = Attachments.Add(new VolumeAttachment(e.PodId, e.MountPath, e.ReadOnly)) },
        VolumeDetached e => this with { Attachments = Attachments.RemoveAll(a => a.PodId == e.PodId) },
        VolumeDeletionRequested e => this with
        {
            Deleting = true,
            Replicas = Replicas.Select(r => r with { Phase = ReplicaPhase.Erasing, Since = e.At }).ToImmutableList(),
        },
        VolumeReplicaErased e => this with { Replicas = Replicas.RemoveAll(r => r.HostId == e.HostId) },
        VolumeKeysDestroyed => this with { KeyId = null },
        VolumeDeleted => this with { Deleted = true },
        _ => this,
    };

    private Volume NoteHealth() => Healthy == Desired ? this with { WasHealthy = true } : this;

    private Volume Update(Guid hostId, Func<VolumeReplica, VolumeReplica> change) =>
        this with { Replicas = Replicas.Select(r => r.HostId == hostId ? change(r) : r).ToImmutableList() };
}
