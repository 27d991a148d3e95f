namespace Kraud.Domain.Volumes;

public enum VolumeClass { Ephemeral, Block, Gfs, Red }

public enum VolumeState { Pending, Provisioning, Healthy, Degraded, Unavailable, Deleted }

public sealed record VolumeRequested(Guid VolumeId, Guid TenantId, string Name, VolumeClass Class, int SizeGiB, string? Zone, string RequestedBy,
    DateTimeOffset At);

/// <summary>The volume is part of another resource (an app's data): only that resource attaches, detaches or deletes it.</summary>
public sealed record VolumeOwnedBy(Guid VolumeId, Kraud.Domain.Common.ResourceOwner Owner, DateTimeOffset At);

/// <summary>No storage host can take the volume's missing replicas now; placement is tried again when the fleet changes.</summary>
public sealed record VolumePlacementRefused(Guid VolumeId, string Reason, DateTimeOffset At);

/// <param name="MakesKey">This replica's host runtime generates the volume's data key (the volume has none yet).</param>
public sealed record VolumeReplicaScheduled(Guid VolumeId, Guid HostId, string HostName, string Zone, bool MakesKey, DateTimeOffset At);

/// <summary>
/// The host runtime generated the volume's data key and the control plane stored it wrapped under the fleet's key-encryption
/// key. The event names the key, never its bytes.
/// </summary>
public sealed record VolumeKeyCreated(Guid VolumeId, Guid KeyId, Guid HostId, string KekId, DateTimeOffset At);

/// <summary>The host runtime set the replica up (and, for a replacement, copied the data from the healthy ones).</summary>
public sealed record VolumeReplicaHealthy(Guid VolumeId, Guid HostId, bool Encrypted, DateTimeOffset At);

public sealed record VolumeReplicaFailed(Guid VolumeId, Guid HostId, string Reason, DateTimeOffset At);

/// <summary>The replica's storage host failed: its copy and the data key it held in memory are gone with it.</summary>
public sealed record VolumeReplicaLost(Guid VolumeId, Guid HostId, string Reason, DateTimeOffset At);

public sealed record VolumeAttached(Guid VolumeId, Guid PodId, string MountPath, bool ReadOnly, string By, DateTimeOffset At);

public sealed record VolumeDetached(Guid VolumeId, Guid PodId, string By, DateTimeOffset At);

public sealed record VolumeDeletionRequested(Guid VolumeId, string By, DateTimeOffset At);

/// <summary>The host runtime destroyed the replica's copy of the data key and its data (crypto-erase).</summary>
public sealed record VolumeReplicaErased(Guid VolumeId, Guid HostId, DateTimeOffset At);

/// <summary>Every replica is erased and the wrapped data key is deleted from the key store: nothing can decrypt the data again.</summary>
public sealed record VolumeKeysDestroyed(Guid VolumeId, Guid? KeyId, DateTimeOffset At);

public sealed record VolumeDeleted(Guid VolumeId, DateTimeOffset At);

/// <summary>A real storage host serves its replica as an NBD export there (ciphertext only; access is granted per client).</summary>
public sealed record VolumeReplicaExported(Guid VolumeId, Guid HostId, string Address, int Port, DateTimeOffset At);

/// <summary>
/// A compute host (a hypervisor: it may hold keys) generates the volume's data key and writes one LUKS header through every
/// replica's export; the volume is healthy once it reported the wrapped key (<see cref="VolumeKeyCreated"/>).
/// </summary>
public sealed record VolumeFormatStarted(Guid VolumeId, Guid WorkerHostId, string WorkerHostName, DateTimeOffset At);

/// <summary>
/// A compute host fills the replica on <paramref name="HostId"/> from the healthy ones: the QEMU of the microVM that has
/// the volume attached (<paramref name="VmId"/>, while it keeps running), or a storage daemon of the worker's.
/// </summary>
public sealed record VolumeReplicaResyncStarted(Guid VolumeId, Guid HostId, Guid WorkerHostId, string WorkerHostName, Guid? VmId, DateTimeOffset At);

public sealed record VolumeReplicaResyncProgressed(Guid VolumeId, Guid HostId, long SyncedBytes, long TotalBytes, double BytesPerSecond, DateTimeOffset At);

/// <summary>
/// The replica holds what its peers hold: copied, then read back through a quorum with it that found no block where it
/// differs. <paramref name="PauseMs"/> is how long the guest was paused to take it into its quorum (0 without a guest).
/// </summary>
public sealed record VolumeReplicaResynced(Guid VolumeId, Guid HostId, long Bytes, double Seconds, double PauseMs, DateTimeOffset At);

/// <summary>Formatting or a resync did not finish (the worker says why); it is tried again.</summary>
public sealed record VolumeWorkFailed(Guid VolumeId, Guid WorkerHostId, Guid? HostId, string Reason, DateTimeOffset At);

/// <summary>
/// The volume's replicas are to be compared block by block (a scrub), asked by an admin or by the periodic round: the guest
/// reads one replica and compares nothing, so a replica that rotted silently is found only this way.
/// </summary>
public sealed record VolumeScrubRequested(Guid VolumeId, string By, DateTimeOffset At);

/// <summary>A compute host reads every replica through a voting quorum: the QEMU of the microVM <paramref name="VmId"/>, or a worker's daemon.</summary>
public sealed record VolumeScrubStarted(Guid VolumeId, Guid WorkerHostId, string WorkerHostName, Guid? VmId, DateTimeOffset At);

/// <summary>
/// The scrub read <paramref name="Bytes"/> of every replica. <paramref name="BadReplicas"/> held other bytes than the majority
/// (each is also a <see cref="VolumeReplicaBad"/>); <paramref name="Unresolved"/> names a difference no majority decides (a RED
/// volume's two copies, or three versions of a block), which fails no replica.
/// </summary>
public sealed record VolumeScrubbed(Guid VolumeId, long Bytes, double Seconds, int BadReplicas, string? Unresolved, DateTimeOffset At);

/// <summary>
/// The replica is out of the volume: at <paramref name="Offset"/> (bytes into the replica, <paramref name="Length"/> long) it
/// returned other bytes than its peers (a scrub) or failed a read, write or flush in a running guest's quorum
/// (QEMU's QUORUM_REPORT_BAD). It is replaced as a failed replica is, filled from the others.
/// </summary>
public sealed record VolumeReplicaBad(Guid VolumeId, Guid HostId, long Offset, long Length, string Detail, DateTimeOffset At);
