using System.Collections.Immutable;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Confidential;

namespace Kraud.Domain.Pods;

public abstract record PodCommand(Guid PodId, DateTimeOffset At);

/// <param name="Owner">Set when a product resource (Kubernetes cluster, app) makes the pod as one of its parts.</param>
/// <param name="Image">What the image reference resolved to (createPod resolves it before deciding; products' pods do not).</param>
public sealed record CreatePod(Guid PodId, Guid TenantId, PodSpec Spec, int Replicas, Principal By, DateTimeOffset At, ResourceOwner? Owner = null,
    Images.ResolvedImage? Image = null)
    : PodCommand(PodId, At);

/// <param name="OnBehalfOf">The owner resource that scales its own pod; an owned pod refuses anyone else.</param>
public sealed record ScalePod(Guid PodId, int Replicas, Principal By, DateTimeOffset At, Guid? OnBehalfOf = null) : PodCommand(PodId, At);
public sealed record RestartPod(Guid PodId, Principal By, DateTimeOffset At) : PodCommand(PodId, At);
public sealed record DeletePod(Guid PodId, Principal By, DateTimeOffset At, Guid? OnBehalfOf = null) : PodCommand(PodId, At);

/// <summary>Stop every microVM of the pod and keep the pod (docker stop); <see cref="StartPod"/> runs it again.</summary>
public sealed record StopPod(Guid PodId, Principal By, DateTimeOffset At) : PodCommand(PodId, At);
public sealed record StartPod(Guid PodId, Principal By, DateTimeOffset At) : PodCommand(PodId, At);

/// <summary>
/// One replica's microVM is to go and the replica to run anew (on the host the scheduler picks): what deleting a Kubernetes
/// pod of a Deployment does. Its owner asks for it, as for a scale.
/// </summary>
public sealed record EvictPodReplica(Guid PodId, Guid VmId, string Reason, Principal By, DateTimeOffset At, Guid? OnBehalfOf = null) : PodCommand(PodId, At);

/// <summary>Mount a volume (the volume's own stream decided it may be attached); live microVMs restart to get it.</summary>
public sealed record AttachPodVolume(Guid PodId, VolumeMount Mount, Principal By, DateTimeOffset At) : PodCommand(PodId, At);

public sealed record DetachPodVolume(Guid PodId, Guid VolumeId, Principal By, DateTimeOffset At) : PodCommand(PodId, At);

/// <summary>The reconciler replaces the pod's failed replicas whose back-off is over.</summary>
public sealed record ReplaceFailedReplicas(Guid PodId, DateTimeOffset At) : PodCommand(PodId, At);

/// <summary>The scheduler's verdict for the pod's unplaced replicas: a host for each, or why none fits.</summary>
public sealed record ApplyPlacement(Guid PodId, IReadOnlyList<ReplicaPlacement> Placements, string? UnschedulableReason, DateTimeOffset At)
    : PodCommand(PodId, At);

public sealed record ReplicaPlacement(int Replica, Guid HostId, string HostName);

/// <summary>What a host runtime reported about one microVM.</summary>
public sealed record RecordVmReport(Guid PodId, Guid VmId, Guid HostId, VmReport Report, DateTimeOffset At) : PodCommand(PodId, At);

public abstract record VmReport;
public sealed record VmBooting : VmReport;
/// <param name="Attestation">The host's attestation report and the roots the control plane trusts; what a confidential pod's VM must pass.</param>
/// <param name="Image">The image digest the host verified and booted, and how many bytes it downloaded for it (null without an image).</param>
public sealed record VmBooted(double BootMs, AttestationEvidence? Attestation = null, int EncryptedEphemeralGiB = 0, PulledImage? Image = null) : VmReport;

public sealed record PulledImage(string Digest, long DownloadedBytes);

/// <summary>The VM's workload exited (and the VM powered off).</summary>
/// <param name="EphemeralErased">The host runtime destroyed the VM's ephemeral data key with it.</param>
public sealed record VmExited(int ExitCode, bool EphemeralErased) : VmReport;

public sealed record AttestationEvidence(AttestationReport? Report, AttestationTrust Trust);
public sealed record VmFailed(string Reason) : VmReport;

/// <param name="EphemeralErased">The host runtime destroyed the VM's ephemeral data key.</param>
public sealed record VmStopped(bool EphemeralErased = false) : VmReport;

/// <summary>The VM's host failed: the control plane's own conclusion, not a host's report.</summary>
public sealed record VmHostFailed(string Reason) : VmReport;

/// <summary>The VM's host is being drained: the replica moves.</summary>
public sealed record VmEvicted(string Reason) : VmReport;

/// <summary>The host's heartbeats no longer list a VM the pod believes is running.</summary>
public sealed record VmMissing : VmReport;

public static class PodDecider
{
    public const int MaxReplicas = 50;

    public static IReadOnlyList<object> Decide(PodCommand command, Pod state) => (command, state) switch
    {
        // A pod's id is made for one createPod request, so only a retry of that request (its first attempt committed,
        // its answer was lost) names a pod that exists: it is answered with the pod, and nothing is appended again.
        (CreatePod c, { Exists: true } s) when IsSameCreate(c, s) => [],
        (CreatePod c, { Exists: true }) => throw DomainException.Conflict($"Pod {c.PodId} exists already."),
        (CreatePod c, _) => Create(c),
        (_, { Exists: false }) => throw DomainException.NotFound("Pod", command.PodId),
        (RecordVmReport c, _) => Report(c, state),
        (ApplyPlacement c, _) => Place(c, state),
        (ReplaceFailedReplicas c, _) => state.ReplaceableFailures(c.At)
            .Select(i => new PodReplicaReplaced(c.PodId, i.VmId, i.HostId, $"replica {i.Replica} failed ({i.Reason}); booting a new one", c.At))
            .ToList<object>(),
        (_, { Deleting: true }) => throw new DomainException(ErrorCode.Precondition, $"Pod {command.PodId} is being deleted."),
        (ScalePod { OnBehalfOf: var owner }, { Owner: { } o }) when owner != o.Id => throw OwnedBy(o, state),
        (DeletePod { OnBehalfOf: var owner }, { Owner: { } o }) when owner != o.Id => throw OwnedBy(o, state),
        (EvictPodReplica { OnBehalfOf: var owner }, { Owner: { } o }) when owner != o.Id => throw OwnedBy(o, state),
        (ScalePod c, _) => Scale(c, state),
        (EvictPodReplica c, _) => Evict(c, state),
        (RestartPod c, _) => [Restart(c, state)],
        (DeletePod c, _) => [new PodDeletionRequested(c.PodId, c.By.Actor, c.At)],
        (StopPod, { Halted: true }) => [],
        (StopPod, { Owner: { } o }) => throw OwnedBy(o, state),
        (StopPod c, _) => [new PodStopRequested(c.PodId, c.By.Actor, c.At)],
        (StartPod, { Halted: false }) => [],
        (StartPod c, _) => [new PodStartRequested(c.PodId, c.By.Actor, c.At)],
        (AttachPodVolume c, _) => Attach(c, state),
        (DetachPodVolume c, _) => Detach(c, state),
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.GetType().Name),
    };

    /// <summary>The pod was created by this very command: same id, tenant, name, namespace, image and size.</summary>
    public static bool IsSameCreate(CreatePod c, Pod state) =>
        state.Exists && state.Id == c.PodId && state.TenantId == c.TenantId && state.Spec.Name == c.Spec.Name && state.Spec.Namespace == c.Spec.Namespace
        && state.Spec.Image == c.Spec.Image && state.Spec.Cpu == c.Spec.Cpu && state.Spec.MemoryMiB == c.Spec.MemoryMiB && state.Replicas == c.Replicas
        && state.Owner == c.Owner;

    private static IReadOnlyList<object> Create(CreatePod c)
    {
        var s = c.Spec;
        Validate(s, c.Replicas);
        List<object> events = [new PodRequested(c.PodId, c.TenantId, s, c.Replicas, c.By.Actor, c.At)];
        if (c.Image is { } image) events.Add(new PodImageResolved(c.PodId, image, c.At));
        if (c.Owner is { } owner) events.Add(new PodOwnedBy(c.PodId, owner, c.At));
        if (s.Confidential) events.Add(new PodLaunchMeasured(c.PodId, LaunchConfigurations.For(s).Measurement(), c.At));
        return events;
    }

    /// <summary>
    /// What a pod spec must satisfy to be created; createPod checks it before it asks a registry about the image, so bad
    /// input is refused without a network round trip.
    /// </summary>
    public static void Validate(PodSpec s, int replicas)
    {
        Names.RequireDnsLabel(s.Name, "name");
        Names.RequireDnsLabel(s.Namespace, "namespace");
        Names.RequireText(s.Image, "image", 500);
        if (s.Image.Any(char.IsWhiteSpace)) throw DomainException.Validation($"image '{s.Image}' must not contain white space.");
        Names.RequireRange(s.Cpu, 1, 64, "cpu");
        Names.RequireRange(s.MemoryMiB, 64, 256 * 1024, "memoryMiB");
        Names.RequireRange(replicas, 1, MaxReplicas, "replicas");
        Names.RequireRange(s.EphemeralGiB, 0, 4096, "ephemeralGiB");
        if (s.Zone is not null) Names.RequireDnsLabel(s.Zone, "zone");
        if (s.Confidential && replicas != 1)
            throw DomainException.Validation("Confidential Compute runs on one node (AMD SEV-SNP) and is not replicated: replicas must be 1.");
        RequireMounts(s.Mounts, replicas);
        foreach (var key in s.Env.Keys)
            if (key.Length == 0 || key.Length > 256 || key.Contains('=') || key.Any(char.IsControl))
                throw DomainException.Validation($"env name '{key}' is not valid: 1-256 characters without '=' or control characters.");
    }

    private static DomainException OwnedBy(ResourceOwner owner, Pod state) => owner.Refuses($"Pod {state.Spec.Namespace}/{state.Spec.Name}");

    private static IReadOnlyList<object> Scale(ScalePod c, Pod state)
    {
        Names.RequireRange(c.Replicas, 1, MaxReplicas, "replicas");
        if (state.Spec.Confidential && c.Replicas != 1)
            throw DomainException.Validation("Confidential Compute runs on one node and cannot be scaled.");
        RequireMounts(state.Spec.Mounts, c.Replicas);
        return c.Replicas == state.Replicas ? [] : [new PodScaled(c.PodId, state.Replicas, c.Replicas, c.By.Actor, c.At)];
    }

    /// <summary>A microVM already stopping goes anyway (nothing to add); one the pod no longer has is not found.</summary>
    private static IReadOnlyList<object> Evict(EvictPodReplica c, Pod state) => state.Instance(c.VmId) switch
    {
        null => throw DomainException.NotFound("microVM", c.VmId),
        { Phase: VmPhase.Stopping } => [],
        var vm => [new PodReplicaEvicted(c.PodId, vm.VmId, vm.HostId, c.Reason, c.At)],
    };

    public const int MaxVolumes = 16;

    private static void RequireMounts(IReadOnlyList<VolumeMount> mounts, int replicas)
    {
        if (mounts.Count > MaxVolumes) throw DomainException.Validation($"A pod mounts at most {MaxVolumes} volumes.");
        if (mounts.Select(m => m.VolumeId).Distinct().Count() != mounts.Count) throw DomainException.Validation("A volume is mounted twice.");
        if (mounts.Select(m => m.MountPath).Distinct().Count() != mounts.Count) throw DomainException.Validation("Two volumes share a mountPath.");
        if (replicas > 1 && mounts.FirstOrDefault(m => m.Class == Volumes.VolumeClass.Block && !m.ReadOnly) is { } block)
            throw DomainException.Validation(
                $"BLOCK volume {block.VolumeId} is one disk for one microVM: a pod that mounts it writable runs 1 replica (share data between replicas with a GFS volume).");
    }

    private static IReadOnlyList<object> Attach(AttachPodVolume c, Pod state)
    {
        RequireMounts([.. state.Spec.Mounts, c.Mount], state.Replicas);
        var attached = new PodVolumeAttached(c.PodId, c.Mount, c.By.Actor, c.At);
        return state.Live.Any() ? [attached, Restart(new RestartPod(c.PodId, c.By, c.At), state)] : [attached];
    }

    private static IReadOnlyList<object> Detach(DetachPodVolume c, Pod state)
    {
        if (state.Spec.Mounts.All(m => m.VolumeId != c.VolumeId)) return [];
        var detached = new PodVolumeDetached(c.PodId, c.VolumeId, c.By.Actor, c.At);
        return state.Live.Any() ? [detached, Restart(new RestartPod(c.PodId, c.By, c.At), state)] : [detached];
    }

    private static PodRestarted Restart(RestartPod c, Pod state)
    {
        var replicas = state.Live
            .Select(i => (i, generation: state.NextGeneration(i.Replica)))
            .Select(x => x.i.Phase == VmPhase.Failed
                ? new ReplicaRestart(x.i.Replica, x.i.VmId, Guid.Empty, x.generation, null, null)
                : new ReplicaRestart(x.i.Replica, x.i.VmId, Pod.VmIdFor(c.PodId, x.i.Replica, x.generation), x.generation, x.i.HostId, x.i.HostName))
            .ToList();
        return new PodRestarted(c.PodId, replicas, c.By.Actor, c.At);
    }

    private static IReadOnlyList<object> Place(ApplyPlacement c, Pod state)
    {
        var unplaced = state.Unplaced;
        if (unplaced.Count == 0) return [];
        if (c.UnschedulableReason is { } reason)
            return state.UnschedulableReason == reason ? [] : [new PodUnschedulable(c.PodId, reason, c.At)];
        var placements = c.Placements.Where(p => unplaced.Contains(p.Replica)).ToList();
        if (placements.Count != unplaced.Count)
            throw new InvalidOperationException($"The placement for pod {c.PodId} does not cover replicas {string.Join(',', unplaced)}.");
        return placements
            .Select(p => (p, generation: state.NextGeneration(p.Replica)))
            .Select(x => new PodReplicaScheduled(c.PodId, x.p.Replica, x.generation, Pod.VmIdFor(c.PodId, x.p.Replica, x.generation), x.p.HostId, x.p.HostName, c.At))
            .ToList<object>();
    }

    /// <summary>
    /// Reports may arrive late, twice or for a VM that was already replaced: anything that does not move
    /// a current VM forward is dropped, which keeps retried host messages harmless.
    /// </summary>
    /// <summary>The last VM of a pod being deleted is gone: the pod is stopped.</summary>
    private static IEnumerable<object> Stopped(RecordVmReport c, Pod state) =>
        state.Deleting && state.Instances.Count == 1 ? [new PodStopped(c.PodId, c.At)] : [];

    /// <summary>An encrypted ephemeral disk whose key is gone: recorded, since that is what makes its data unreadable.</summary>
    private static IEnumerable<object> Erased(RecordVmReport c, PodInstance vm, string? how) =>
        vm.EphemeralEncrypted && how is not null ? [new EphemeralDiskErased(c.PodId, c.VmId, c.HostId, how, c.At)] : [];

    private static IReadOnlyList<object> Report(RecordVmReport c, Pod state)
    {
        var vm = state.Instance(c.VmId);
        if (vm is null || vm.HostId != c.HostId) return [];
        return (c.Report, vm.Phase) switch
        {
            (VmStopped s, _) => [.. Erased(c, vm, s.EphemeralErased ? "the microVM stopped and its host runtime destroyed the key" : null),
                new PodReplicaStopped(c.PodId, c.VmId, c.HostId, c.At), .. Stopped(c, state)],
            (VmHostFailed f, VmPhase.Stopping) => [.. Erased(c, vm, "the host failed; the key lived only in its memory"),
                new PodReplicaStopped(c.PodId, c.VmId, c.HostId, c.At), .. Stopped(c, state)],
            (_, VmPhase.Stopping or VmPhase.Failed) => [],
            (VmHostFailed f, _) when state.Spec.Confidential => [new PodReplicaFailed(c.PodId, c.VmId, c.HostId,
                $"{f.Reason}; Confidential Compute runs on one node and is not rescheduled on failure", c.At)],
            (VmHostFailed f, _) => [.. Erased(c, vm, "the host failed; the key lived only in its memory"),
                new PodReplicaLost(c.PodId, c.VmId, c.HostId, f.Reason, EphemeralDataLost: true, c.At)],
            (VmEvicted e, _) => [new PodReplicaEvicted(c.PodId, c.VmId, c.HostId, e.Reason, c.At)],
            (VmMissing, VmPhase.Running) => [new PodReplicaVanished(c.PodId, c.VmId, c.HostId, "the host no longer reports it running", c.At)],
            (VmBooting, VmPhase.Scheduled) => [new PodReplicaBooting(c.PodId, c.VmId, c.HostId, c.At)],
            (VmBooted b, VmPhase.Scheduled or VmPhase.Booting) when state.Attestation is { } expected => WithImage(c, b, WithDisk(c, b, Attest(c, b, vm, expected))),
            (VmBooted b, VmPhase.Scheduled or VmPhase.Booting) => WithImage(c, b, WithDisk(c, b, [new PodReplicaRunning(c.PodId, c.VmId, c.HostId, b.BootMs, c.At)])),
            (VmExited x, VmPhase.Running or VmPhase.Booting or VmPhase.Scheduled) => [new PodReplicaExited(c.PodId, c.VmId, c.HostId, x.ExitCode, c.At),
                .. Erased(c, vm, x.EphemeralErased ? "the workload exited and its host runtime destroyed the key" : null)],
            (VmFailed f, _) => [new PodReplicaFailed(c.PodId, c.VmId, c.HostId, f.Reason, c.At)],
            _ => [],
        };
    }

    /// <summary>The digest the host verified and booted, recorded before the VM's start: replay tells which digest ran when.</summary>
    private static IReadOnlyList<object> WithImage(RecordVmReport c, VmBooted b, IReadOnlyList<object> events) =>
        b.Image is { } image ? [new PodReplicaImagePulled(c.PodId, c.VmId, c.HostId, image.Digest, image.DownloadedBytes, c.At), .. events] : events;

    /// <summary>A VM that runs with an ephemeral disk its host confirmed encrypted: recorded beside its start.</summary>
    private static IReadOnlyList<object> WithDisk(RecordVmReport c, VmBooted b, IReadOnlyList<object> events) =>
        b.EncryptedEphemeralGiB > 0 && events.OfType<PodReplicaRunning>().Any()
            ? [.. events, new EphemeralDiskEncrypted(c.PodId, c.VmId, c.HostId, b.EncryptedEphemeralGiB, c.At)]
            : events;

    /// <summary>A confidential guest is RUNNING only once its host proved it launched exactly what the pod asked for.</summary>
    private static IReadOnlyList<object> Attest(RecordVmReport c, VmBooted booted, PodInstance vm, PodAttestation expected)
    {
        var verdict = booted.Attestation is { } evidence
            ? AttestationVerifier.Verify(evidence.Report, expected.Measurement, c.VmId, vm.HostName, evidence.Trust, c.At)
            : AttestationVerdict.Failed("the host's boot report carried no attestation evidence");
        if (verdict.Verified)
            return [new PodReplicaAttested(c.PodId, c.VmId, c.HostId, verdict.Measurement, c.At), new PodReplicaRunning(c.PodId, c.VmId, c.HostId, booted.BootMs, c.At)];
        var reason = $"attestation failed: {verdict.Reason}";
        return [new PodReplicaAttestationFailed(c.PodId, c.VmId, c.HostId, reason, c.At), new PodReplicaFailed(c.PodId, c.VmId, c.HostId, reason, c.At)];
    }
}

/// <summary>What the host runtimes must do after a pod changed: derived from the state before and after, never stored.</summary>
public static class PodReactions
{
    /// <summary>Boot this VM; <paramref name="IsNew"/> when its host capacity still has to be reserved.</summary>
    public sealed record Boot(PodInstance Instance, bool IsNew);
    public sealed record Stop(PodInstance Instance);

    public static IReadOnlyList<object> HostCommands(Pod before, Pod after)
    {
        var old = before.Instances.ToDictionary(i => i.VmId);
        var commands = new List<object>();
        foreach (var i in after.Instances)
        {
            old.TryGetValue(i.VmId, out var was);
            if (i.Phase == VmPhase.Scheduled && was is null) commands.Add(new Boot(i, IsNew: true));
            if (i.Phase == VmPhase.Scheduled && was is { Phase: not VmPhase.Scheduled }) commands.Add(new Boot(i, IsNew: false));
            if (i.Phase == VmPhase.Stopping && was is { Phase: not VmPhase.Stopping }) commands.Add(new Stop(i));
        }
        return commands;
    }

    /// <summary>VMs whose host capacity is free again: stopped, or died (a failed VM was released when it failed).</summary>
    public static ImmutableArray<PodInstance> ReleasedVms(Pod before, Pod after) =>
        [.. before.Instances.Where(i => i.Phase != VmPhase.Failed && after.Instance(i.VmId) is null or { Phase: VmPhase.Failed })];
}
