using System.Collections.Immutable;
using Kraud.Domain.Common;

namespace Kraud.Domain.Pods;

public enum PodState { Pending, Scheduled, Booting, Running, Stopping, Stopped, Failed, Unschedulable }

public enum VmPhase { Scheduled, Booting, Running, Failed, Stopping }

/// <summary>One microVM of a pod. A replica index keeps its place across restarts; each restart is a new generation and a new VM.</summary>
public sealed record PodInstance(
    int Replica, int Generation, Guid VmId, Guid HostId, string HostName, VmPhase Phase, double? BootMs, string? Reason,
    DateTimeOffset? StartedAt)
{
    public DateTimeOffset? FailedAt { get; init; }

    /// <summary>The host runtime confirmed the ephemeral disk is encrypted (and holds its key in memory only).</summary>
    public bool EphemeralEncrypted { get; init; }
    /// <summary>The VPC addresses IPAM leased to this microVM.</summary>
    public string? Ip6 { get; init; }
    public string? Ip4 { get; init; }

    /// <summary>The exit code of the workload, once it exited (the microVM is FAILED until the reconciler replaces it).</summary>
    public int? ExitCode { get; init; }

    /// <summary>What its host downloaded for the pod's image when it booted this microVM (0: all from its cache).</summary>
    public long? ImageDownloadedBytes { get; init; }
}

/// <summary>A confidential pod's attestation: the measurement it expects and whether its microVM proved it, and when.</summary>
public sealed record PodAttestation(string Measurement, bool Verified, DateTimeOffset? VerifiedAt);

public sealed record Pod(
    Guid Id, Guid TenantId, PodSpec Spec, int Replicas, bool Exists, bool Deleting, string? UnschedulableReason,
    ImmutableList<PodInstance> Instances, DateTimeOffset CreatedAt) : IState<Pod>
{
    private static readonly PodSpec NoSpec = new("", "", "", [], ImmutableDictionary<string, string>.Empty, 0, 0, null, false, 0);

    public static Pod Initial { get; } = new(Guid.Empty, Guid.Empty, NoSpec, 0, false, false, null, [], default);

    /// <summary>The instances that serve the pod now: not on their way out, and within the replica count.</summary>
    public IEnumerable<PodInstance> Live => Instances.Where(i => i.Phase != VmPhase.Stopping && i.Replica < Replicas);

    /// <summary>Replica indexes that have no live microVM and so wait for the scheduler.</summary>
    public IReadOnlyList<int> Unplaced =>
        Deleting || Halted ? [] : Enumerable.Range(0, Replicas).Where(r => Live.All(i => i.Replica != r)).ToList();

    /// <summary>The image createPod resolved (null for pods of products that name images they do not pull).</summary>
    public Images.ResolvedImage? Image { get; init; }

    /// <summary>Stopped by the tenant (docker stop) and not deleted: no microVM runs until it is started again.</summary>
    public bool Halted { get; init; }

    /// <summary>Deleted and every microVM gone: its name and volumes are free.</summary>
    public bool Gone => Deleting && Instances.IsEmpty;

    /// <summary>Confidential pods only: the expected launch measurement and the state of the current microVM's proof.</summary>
    public PodAttestation? Attestation { get; init; }

    /// <summary>The product resource that made this pod and alone may scale or delete it; null for a tenant's own pods.</summary>
    public ResourceOwner? Owner { get; init; }

    public int NextGeneration(int replica) => Generations.GetValueOrDefault(replica);

    /// <summary>The highest generation each replica index has used, so that ids are never reused after a VM is gone.</summary>
    public ImmutableDictionary<int, int> Generations { get; init; } = ImmutableDictionary<int, int>.Empty;

    public PodState State
    {
        get
        {
            if (Deleting || Halted) return Instances.IsEmpty ? PodState.Stopped : PodState.Stopping;
            var live = Live.ToList();
            if (live.Any(i => i.Phase == VmPhase.Failed)) return PodState.Failed;
            if (UnschedulableReason is not null) return PodState.Unschedulable;
            if (live.Count < Replicas) return PodState.Pending;
            if (live.All(i => i.Phase == VmPhase.Running)) return PodState.Running;
            if (live.Any(i => i.Phase is VmPhase.Booting or VmPhase.Running)) return PodState.Booting;
            return PodState.Scheduled;
        }
    }

    public string? Reason => State switch
    {
        PodState.Failed => Live.First(i => i.Phase == VmPhase.Failed).Reason,
        PodState.Unschedulable => UnschedulableReason,
        _ => null,
    };

    public PodInstance? Instance(Guid vmId) => Instances.FirstOrDefault(i => i.VmId == vmId);

    /// <summary>
    /// How long a failed replica waits before the reconciler replaces it: doubling with each generation the replica has
    /// used (1 s, 2 s, 4 s … at most 5 minutes), so a VM that keeps crashing does not keep a host busy.
    /// </summary>
    public TimeSpan RestartBackoff(int replica) =>
        TimeSpan.FromSeconds(Math.Min(300, Math.Pow(2, Math.Max(0, Generations.GetValueOrDefault(replica) - 1))));

    /// <summary>Failed replicas the reconciler replaces, each with the end of its back-off (confidential pods are never moved or replaced automatically).</summary>
    private IEnumerable<(PodInstance Instance, DateTimeOffset Due)> Failures => Deleting || Halted || Spec.Confidential
        ? []
        : Live.Where(i => i is { Phase: VmPhase.Failed, FailedAt: not null }).Select(i => (i, i.FailedAt!.Value + RestartBackoff(i.Replica)));

    /// <summary>Failed replicas the reconciler may replace now.</summary>
    public IReadOnlyList<PodInstance> ReplaceableFailures(DateTimeOffset now) => Failures.Where(f => f.Due <= now).Select(f => f.Instance).ToList();

    /// <summary>When the next failed replica's back-off ends (the reconciler's deadline); null when none waits to be replaced.</summary>
    public DateTimeOffset? NextReplacementAt => Failures.Select(f => (DateTimeOffset?)f.Due).Min();

    public static Guid VmIdFor(Guid podId, int replica, int generation) => DeterministicId.From("microvm", podId, replica, generation);

    /// <summary>Since when the scheduler has refused the pod (the start of this refusal, whatever reasons followed); null when it has not.</summary>
    public DateTimeOffset? UnschedulableSince { get; init; }

    public Pod Evolve(object @event)
    {
        var next = Next(@event);
        // A new microVM (scheduled, restarted, booted again) has proven nothing yet: the attestation waits for its report.
        if (@event is PodReplicaScheduled or PodRestarted or PodReplicaVanished && next.Attestation is { } attestation)
            next = next with { Attestation = attestation with { Verified = false, VerifiedAt = null } };
        if (next.UnschedulableReason is null) return next.UnschedulableSince is null ? next : next with { UnschedulableSince = null };
        return @event is PodUnschedulable refused && UnschedulableReason is null ? next with { UnschedulableSince = refused.At } : next;
    }

    private Pod Next(object @event) => @event switch
    {
        PodRequested e => new Pod(e.PodId, e.TenantId, e.Spec, e.Replicas, true, false, null, [], e.At),
        PodReplicaScheduled e => this with
        {
            UnschedulableReason = null,
            Instances = Instances.Add(new PodInstance(e.Replica, e.Generation, e.VmId, e.HostId, e.HostName, VmPhase.Scheduled, null, null, null)),
            Generations = Generations.SetItem(e.Replica, Math.Max(e.Generation + 1, Generations.GetValueOrDefault(e.Replica))),
        },
        PodUnschedulable e => this with { UnschedulableReason = e.Reason },
        PodReplicaBooting e => Update(e.VmId, i => i.Phase == VmPhase.Scheduled ? i with { Phase = VmPhase.Booting } : i),
        PodReplicaRunning e => Update(e.VmId, i => i with { Phase = VmPhase.Running, BootMs = e.BootMs, StartedAt = e.At, Reason = null }),
        PodReplicaFailed e => Update(e.VmId, i => i with { Phase = VmPhase.Failed, Reason = e.Reason, FailedAt = e.At }),
        PodReplicaReplaced e => this with { Instances = Instances.RemoveAll(i => i.VmId == e.VmId && i.Phase == VmPhase.Failed) },
        PodScaled e => Retire(i => i.Replica >= e.To) with { Replicas = e.To, UnschedulableReason = null },
        PodRestarted e => e.Replicas.Aggregate(this with { UnschedulableReason = null }, (pod, r) => pod.Restart(r)),
        PodDeletionRequested => Retire(_ => true) with { Deleting = true },
        PodReplicaStopped e => this with { Instances = Instances.RemoveAll(i => i.VmId == e.VmId) },
        PodReplicaEvicted e => this with
        {
            Instances = Instances.Where(i => !(i.VmId == e.VmId && i.Phase == VmPhase.Failed))
                .Select(i => i.VmId == e.VmId ? i with { Phase = VmPhase.Stopping, Reason = e.Reason } : i).ToImmutableList(),
        },
        PodReplicaLost e => this with { Instances = Instances.RemoveAll(i => i.VmId == e.VmId) },
        PodVolumeAttached e => this with { Spec = Spec with { Volumes = [.. Spec.Mounts, e.Mount] } },
        PodVolumeDetached e => this with { Spec = Spec with { Volumes = Spec.Mounts.Where(m => m.VolumeId != e.VolumeId).ToList() } },
        EphemeralDiskEncrypted e => Update(e.VmId, i => i with { EphemeralEncrypted = true }),
        PodReplicaAddressed e => Update(e.VmId, i => i with { Ip6 = e.Ip6, Ip4 = e.Ip4 }),
        PodReplicaVanished e => Update(e.VmId, i => i with { Phase = VmPhase.Scheduled, Reason = e.Reason, BootMs = null, StartedAt = null }),
        PodOwnedBy e => this with { Owner = e.Owner },
        PodLaunchMeasured e => this with { Attestation = new PodAttestation(e.Measurement, false, null) },
        PodReplicaAttested e => this with { Attestation = Attestation! with { Verified = true, VerifiedAt = e.At } },
        PodReplicaAttestationFailed => this with { Attestation = Attestation! with { Verified = false, VerifiedAt = null } },
        PodImageResolved e => this with { Image = e.Image },
        PodReplicaImagePulled e => Update(e.VmId, i => i with { ImageDownloadedBytes = e.DownloadedBytes }),
        PodReplicaExited e => Update(e.VmId, i => i with
        {
            Phase = VmPhase.Failed,
            Reason = $"the workload exited with code {e.ExitCode}",
            FailedAt = e.At,
            ExitCode = e.ExitCode,
        }),
        PodStopRequested => Retire(_ => true) with { Halted = true, UnschedulableReason = null },
        PodStartRequested => this with { Halted = false },
        _ => this,
    };

    private Pod Update(Guid vmId, Func<PodInstance, PodInstance> change) =>
        this with { Instances = Instances.Select(i => i.VmId == vmId && i.Phase != VmPhase.Stopping ? change(i) : i).ToImmutableList() };

    /// <summary>
    /// Matching VMs that never left the scheduler's hands or already died are simply dropped;
    /// the others have to be stopped on their host first.
    /// </summary>
    private Pod Retire(Func<PodInstance, bool> which) => this with
    {
        Instances = Instances
            .Where(i => !(which(i) && i.Phase == VmPhase.Failed))
            .Select(i => which(i) ? i with { Phase = VmPhase.Stopping } : i)
            .ToImmutableList(),
    };

    private Pod Restart(ReplicaRestart r)
    {
        var retired = Instances
            .Where(i => !(i.VmId == r.OldVmId && i.Phase == VmPhase.Failed))
            .Select(i => i.VmId == r.OldVmId ? i with { Phase = VmPhase.Stopping } : i);
        var fresh = r.HostId is { } host
            ? retired.Append(new PodInstance(r.Replica, r.Generation, r.NewVmId, host, r.HostName ?? "", VmPhase.Scheduled, null, null, null))
            : retired;
        return this with
        {
            Instances = fresh.ToImmutableList(),
            Generations = Generations.SetItem(r.Replica, Math.Max(r.Generation + 1, Generations.GetValueOrDefault(r.Replica))),
        };
    }
}
