using Kraud.Domain.Common;
namespace Kraud.Domain.Pods;

/// <summary>What the tenant asked for; immutable once requested (scale and restart are events of their own).</summary>
public sealed record PodSpec(
    string Name, string Namespace, string Image, IReadOnlyList<string> Command, IReadOnlyDictionary<string, string> Env,
    int Cpu, int MemoryMiB, string? Zone, bool Confidential, int EphemeralGiB, IReadOnlyList<VolumeMount>? Volumes = null)
{
    public IReadOnlyList<VolumeMount> Mounts => Volumes ?? [];
}

/// <summary>A volume the pod's microVMs mount (virtio-mmio has no hot-plug, so mounts change only with a restart).</summary>
public sealed record VolumeMount(Guid VolumeId, string MountPath, bool ReadOnly, Kraud.Domain.Volumes.VolumeClass Class);

public sealed record PodRequested(Guid PodId, Guid TenantId, PodSpec Spec, int Replicas, string RequestedBy, DateTimeOffset At);

public sealed record PodReplicaScheduled(Guid PodId, int Replica, int Generation, Guid VmId, Guid HostId, string HostName, DateTimeOffset At);

public sealed record PodUnschedulable(Guid PodId, string Reason, DateTimeOffset At);

public sealed record PodReplicaBooting(Guid PodId, Guid VmId, Guid HostId, DateTimeOffset At);

public sealed record PodReplicaRunning(Guid PodId, Guid VmId, Guid HostId, double BootMs, DateTimeOffset At);

public sealed record PodReplicaFailed(Guid PodId, Guid VmId, Guid HostId, string Reason, DateTimeOffset At);

public sealed record PodScaled(Guid PodId, int From, int To, string By, DateTimeOffset At);

/// <summary>Each live replica gets a fresh microVM (new generation) on the host it already has; its ephemeral data is gone.</summary>
public sealed record PodRestarted(Guid PodId, IReadOnlyList<ReplicaRestart> Replicas, string By, DateTimeOffset At);

public sealed record ReplicaRestart(int Replica, Guid OldVmId, Guid NewVmId, int Generation, Guid? HostId, string? HostName);

public sealed record PodDeletionRequested(Guid PodId, string By, DateTimeOffset At);

public sealed record PodReplicaStopped(Guid PodId, Guid VmId, Guid HostId, DateTimeOffset At);

public sealed record PodStopped(Guid PodId, DateTimeOffset At);

/// <summary>
/// The replica's microVM is gone with its host (the host failed). Its ephemeral disk is gone too; the replica waits for
/// the scheduler to place a new generation elsewhere.
/// </summary>
public sealed record PodReplicaLost(Guid PodId, Guid VmId, Guid HostId, string Reason, bool EphemeralDataLost, DateTimeOffset At);

/// <summary>The host no longer reports a microVM that should run there: it is booted again (same id, same host).</summary>
public sealed record PodReplicaVanished(Guid PodId, Guid VmId, Guid HostId, string Reason, DateTimeOffset At);

/// <summary>
/// The replica has to leave its host (the host is drained, or its owner asked for a new microVM: a Kubernetes pod was
/// deleted): its VM is stopped and the replica placed again.
/// </summary>
public sealed record PodReplicaEvicted(Guid PodId, Guid VmId, Guid HostId, string Reason, DateTimeOffset At);

/// <summary>The reconciler gave up on a failed microVM after its back-off: the replica is placed again as a new generation.</summary>
public sealed record PodReplicaReplaced(Guid PodId, Guid VmId, Guid HostId, string Reason, DateTimeOffset At);

/// <summary>A volume was attached to the pod; its live microVMs restart with it (the restart is its own event).</summary>
public sealed record PodVolumeAttached(Guid PodId, VolumeMount Mount, string By, DateTimeOffset At);

public sealed record PodVolumeDetached(Guid PodId, Guid VolumeId, string By, DateTimeOffset At);

/// <summary>The host runtime set the microVM's ephemeral disk up encrypted with a key that exists only in its memory.</summary>
public sealed record EphemeralDiskEncrypted(Guid PodId, Guid VmId, Guid HostId, int SizeGiB, DateTimeOffset At);

/// <summary>The microVM's ephemeral data key is destroyed, so its data can never be read again (crypto-erase).</summary>
public sealed record EphemeralDiskErased(Guid PodId, Guid VmId, Guid HostId, string Reason, DateTimeOffset At);
/// <summary>
/// A confidential pod's expected launch measurement (SHA-256 over its canonical launch configuration), recorded when it
/// was requested: every microVM of the pod must prove with an attestation report that it was launched with exactly this.
/// </summary>
public sealed record PodLaunchMeasured(Guid PodId, string Measurement, DateTimeOffset At);

/// <summary>The host's attestation report for this microVM verified: chain, signature and measurement.</summary>
public sealed record PodReplicaAttested(Guid PodId, Guid VmId, Guid HostId, string Measurement, DateTimeOffset At);

/// <summary>The host's attestation report for this microVM did not verify; the replica fails and its VM is stopped.</summary>
public sealed record PodReplicaAttestationFailed(Guid PodId, Guid VmId, Guid HostId, string Reason, DateTimeOffset At);

/// <summary>The pod is part of another resource: only that resource scales or deletes it.</summary>
public sealed record PodOwnedBy(Guid PodId, ResourceOwner Owner, DateTimeOffset At);
/// <summary>IPAM gave the microVM its VPC addresses (held until it stops or fails).</summary>
public sealed record PodReplicaAddressed(Guid PodId, Guid VmId, string Ip6, string Ip4, DateTimeOffset At);

/// <summary>
/// createPod resolved the pod's image to the manifest digest for linux/amd64 that every one of its microVMs runs; scale,
/// restart and reschedules never resolve again.
/// </summary>
public sealed record PodImageResolved(Guid PodId, Images.ResolvedImage Image, DateTimeOffset At);

/// <summary>The host verified and unpacked the pod's image for this microVM; <paramref name="DownloadedBytes"/> is 0 when its cache held every layer.</summary>
public sealed record PodReplicaImagePulled(Guid PodId, Guid VmId, Guid HostId, string Digest, long DownloadedBytes, DateTimeOffset At);

/// <summary>The workload of the microVM exited with this code, and the microVM with it; the replica is replaced after its back-off.</summary>
public sealed record PodReplicaExited(Guid PodId, Guid VmId, Guid HostId, int ExitCode, DateTimeOffset At);

/// <summary>The tenant stopped the pod (docker stop): its microVMs stop, the pod keeps its name, spec and replicas until started again.</summary>
public sealed record PodStopRequested(Guid PodId, string By, DateTimeOffset At);

/// <summary>A stopped pod was started again (docker start): its replicas are placed anew.</summary>
public sealed record PodStartRequested(Guid PodId, string By, DateTimeOffset At);
