using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Domain.Volumes;

public abstract record VolumeCommand(Guid VolumeId, DateTimeOffset At);

/// <param name="Owner">Set when a product (an app) makes the volume as one of its parts.</param>
public sealed record CreateVolume(Guid VolumeId, Guid TenantId, string Name, VolumeClass Class, int SizeGiB, string? Zone, Principal By, DateTimeOffset At,
    ResourceOwner? Owner = null) : VolumeCommand(VolumeId, At);

/// <param name="PodZone">The zone the pod runs in, when it runs already.</param>
/// <param name="OnBehalfOf">The owner acting on its own volume (for an owned pod: the pod's owner); an owned volume refuses anyone else.</param>
public sealed record AttachVolume(Guid VolumeId, Guid PodId, string? PodZone, string MountPath, bool ReadOnly, Principal By, DateTimeOffset At,
    Guid? OnBehalfOf = null) : VolumeCommand(VolumeId, At);

public sealed record DetachVolume(Guid VolumeId, Guid PodId, Principal By, DateTimeOffset At, Guid? OnBehalfOf = null) : VolumeCommand(VolumeId, At);

public sealed record DeleteVolume(Guid VolumeId, Principal By, DateTimeOffset At, Guid? OnBehalfOf = null) : VolumeCommand(VolumeId, At);

/// <summary>
/// Compare the volume's replicas block by block. An admin of its tenant or an operator asks for it now; the periodic round asks
/// with <paramref name="Every"/>, and then only a volume not scrubbed (or created) within that long gets one.
/// </summary>
public sealed record ScrubVolume(Guid VolumeId, Principal By, DateTimeOffset At, TimeSpan? Every = null) : VolumeCommand(VolumeId, At);

/// <summary>The scheduler's verdict for the volume's missing replicas: storage hosts for them, or why there are none.</summary>
public sealed record ApplyVolumePlacement(Guid VolumeId, IReadOnlyList<ReplicaHost> Hosts, string? Refusal, DateTimeOffset At) : VolumeCommand(VolumeId, At);

public sealed record ReplicaHost(Guid HostId, string HostName, string Zone);

public sealed record RecordReplicaReport(Guid VolumeId, Guid HostId, ReplicaReport Report, DateTimeOffset At) : VolumeCommand(VolumeId, At);

public abstract record ReplicaReport;

/// <param name="NewKeyId">The replica generated the volume's data key; the control plane stored it wrapped under this id.</param>
/// <param name="KekId">Which key-encryption key wrapped it.</param>
/// <param name="Export">A real storage host serves the (still empty) replica there; it holds no key, so it is not healthy yet.</param>
public sealed record ReplicaReady(bool Encrypted, Guid? NewKeyId = null, string? KekId = null, ExportAddress? Export = null) : ReplicaReport;

/// <summary>
/// Gives the volume's pending work to a compute host (see <see cref="Volume.PendingWork"/>): the one whose microVM
/// <paramref name="VmId"/> has it attached, or a worker. <paramref name="Abandon"/>: the current work's host is gone, take it away.
/// </summary>
public sealed record StartVolumeWork(Guid VolumeId, Guid WorkerHostId, string WorkerHostName, Guid? VmId, bool Abandon, DateTimeOffset At)
    : VolumeCommand(VolumeId, At);

/// <summary>What the compute host doing a volume's work reports.</summary>
public sealed record RecordWorkReport(Guid VolumeId, Guid WorkerHostId, WorkReport Report, DateTimeOffset At) : VolumeCommand(VolumeId, At);

public abstract record WorkReport;

/// <summary>The worker generated the data key, wrapped it (the control plane keeps it under <paramref name="KeyId"/>) and wrote the LUKS header to every replica.</summary>
public sealed record VolumeFormatDone(Guid KeyId, string KekId) : WorkReport;

public sealed record ResyncProgressed(Guid ReplicaHostId, long SyncedBytes, long TotalBytes, double BytesPerSecond) : WorkReport;

public sealed record ResyncDone(Guid ReplicaHostId, long Bytes, double Seconds, double PauseMs) : WorkReport;

public sealed record WorkFailed(Guid? ReplicaHostId, string Reason) : WorkReport;

/// <summary>A scrub read <paramref name="Bytes"/> of every replica; <paramref name="Bad"/> are those the majority outvoted (confirmed by rereads).</summary>
public sealed record ScrubDone(long Bytes, double Seconds, IReadOnlyList<ReplicaDifference> Bad, string? Unresolved) : WorkReport;

/// <summary>Where a replica held other bytes than its peers, or failed an I/O: bytes into the replica.</summary>
public sealed record ReplicaDifference(Guid ReplicaHostId, long Offset, long Length, string Detail);

/// <summary>A running guest's quorum reported the replica bad (QEMU's QUORUM_REPORT_BAD: a failed read, write or flush).</summary>
public sealed record ReplicaBad(long Offset, long Length, string Detail) : ReplicaReport;
public sealed record ReplicaFailed(string Reason) : ReplicaReport;
public sealed record ReplicaHostFailed(string Reason) : ReplicaReport;
public sealed record ReplicaErased : ReplicaReport;

public static class VolumeDecider
{
    public const int MaxSizeGiB = 64 * 1024;

    public static IReadOnlyList<object> Decide(VolumeCommand command, Volume state) => (command, state) switch
    {
        (CreateVolume c, { Exists: true }) => throw DomainException.Conflict($"Volume {c.VolumeId} exists already."),
        (CreateVolume c, _) => Create(c),
        (_, { Exists: false }) or (_, { Deleted: true }) when command is not (RecordReplicaReport or RecordWorkReport or StartVolumeWork) => throw DomainException.NotFound("Volume", command.VolumeId),
        (RecordReplicaReport c, _) => Report(c, state),
        (RecordWorkReport c, _) => WorkReported(c, state),
        (StartVolumeWork c, _) => StartWork(c, state),
        (ApplyVolumePlacement c, _) => Place(c, state),
        (AttachVolume { OnBehalfOf: var owner }, { Owner: { } o }) when owner != o.Id => throw o.Refuses($"Volume {state.Name}"),
        (DetachVolume { OnBehalfOf: var owner }, { Owner: { } o }) when owner != o.Id => throw o.Refuses($"Volume {state.Name}"),
        (DeleteVolume { OnBehalfOf: var owner }, { Owner: { } o }) when owner != o.Id => throw o.Refuses($"Volume {state.Name}"),
        (DetachVolume c, _) => Detach(c, state),
        (ScrubVolume { Every: not null }, { Deleting: true }) => [],
        (ScrubVolume c, { Deleting: false }) => Scrub(c, state),
        (_, { Deleting: true }) => throw new DomainException(ErrorCode.Precondition, $"Volume {state.Name} is being deleted."),
        (AttachVolume c, _) => Attach(c, state),
        (DeleteVolume c, _) => Delete(c, state),
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.GetType().Name),
    };

    /// <summary>What a tenant is told when it creates a volume of this class.</summary>
    public static IReadOnlyList<string> Warnings(VolumeClass c) => c switch
    {
        VolumeClass.Red => ["RED volumes are archival with 2 replicas in one zone: store only data you can reconstruct from elsewhere."],
        VolumeClass.Gfs => ["GFS volumes are EXPERIMENTAL."],
        _ => [],
    };

    private static IReadOnlyList<object> Create(CreateVolume c)
    {
        Names.RequireDnsLabel(c.Name, "name");
        Names.RequireRange(c.SizeGiB, 1, MaxSizeGiB, "sizeGiB");
        if (c.Zone is not null) Names.RequireDnsLabel(c.Zone, "zone");
        if (c.Class == VolumeClass.Ephemeral)
            throw DomainException.Validation(
                "EPHEMERAL disks are made for each microVM when it boots and erased when it stops: set ephemeralGiB on the pod instead of creating a volume.");
        var requested = new VolumeRequested(c.VolumeId, c.TenantId, c.Name, c.Class, c.SizeGiB, c.Zone, c.By.Actor, c.At);
        return c.Owner is { } owner ? [requested, new VolumeOwnedBy(c.VolumeId, owner, c.At)] : [requested];
    }

    private static IReadOnlyList<object> Attach(AttachVolume c, Volume state)
    {
        RequireMountPath(c.MountPath);
        if (state.Attachments.FirstOrDefault(a => a.PodId == c.PodId) is { } existing)
            return existing.MountPath == c.MountPath && existing.ReadOnly == c.ReadOnly
                ? []
                : throw DomainException.Conflict($"Volume {state.Name} is attached to pod {c.PodId} already, at {existing.MountPath}.");
        if (state.Class == VolumeClass.Block && state.Attachments.FirstOrDefault() is { } other)
            throw DomainException.Conflict($"BLOCK volume {state.Name} is attached to pod {other.PodId}: a BLOCK volume attaches to one pod at a time.");
        if (state.Zone is { } zone && c.PodZone is { } podZone && zone != podZone)
            throw new DomainException(ErrorCode.Precondition,
                $"Volume {state.Name} lives in zone {zone} and the pod runs in zone {podZone}: a pod that mounts a zonal volume runs in the volume's zone.");
        return [new VolumeAttached(c.VolumeId, c.PodId, c.MountPath, c.ReadOnly, c.By.Actor, c.At)];
    }

    private static IReadOnlyList<object> Detach(DetachVolume c, Volume state) =>
        state.Attachments.Any(a => a.PodId == c.PodId)
            ? [new VolumeDetached(c.VolumeId, c.PodId, c.By.Actor, c.At)]
            : throw new DomainException(ErrorCode.Precondition, $"Volume {state.Name} is not attached to pod {c.PodId}.");

    private static IReadOnlyList<object> Delete(DeleteVolume c, Volume state)
    {
        // A GFS volume's own file server is no user of it: deleting the volume stops it.
        var users = state.Attachments.Where(a => a.PodId != FileServer.PodId(state.Id)).ToList();
        if (users.Count > 0)
            throw new DomainException(ErrorCode.Precondition,
                $"Volume {state.Name} is attached to {string.Join(", ", users.Select(a => $"pod {a.PodId}"))}: detach it (or delete the pod) first.");
        var requested = new VolumeDeletionRequested(c.VolumeId, c.By.Actor, c.At);
        return [requested, .. Completion(state.Evolve(requested), c.At)];
    }

    private static IReadOnlyList<object> Place(ApplyVolumePlacement c, Volume state)
    {
        if (state.Unplaced == 0) return [];
        if (c.Refusal is { } refusal)
            return state.PlacementRefusal == refusal ? [] : [new VolumePlacementRefused(c.VolumeId, refusal, c.At)];
        if (c.Hosts.Count == 0 || c.Hosts.Count > state.Unplaced || c.Hosts.Select(h => h.HostId).Distinct().Count() != c.Hosts.Count
            || c.Hosts.Any(h => state.Replica(h.HostId) is not null) || c.Hosts.Any(h => state.Zone is { } z && h.Zone != z))
            throw new InvalidOperationException($"The placement for volume {c.VolumeId} breaks its rules: distinct new hosts in its zone, no more than missing.");
        // One replica generates the data key; until it exists the others wait for it.
        var keyMaker = state.KeyId is null && state.Replicas.All(r => !r.MakesKey) && !state.OnBlockExports;
        return c.Hosts.Select((h, i) => (object)new VolumeReplicaScheduled(c.VolumeId, h.HostId, h.HostName, h.Zone, keyMaker && i == 0, c.At)).ToList();
    }

    /// <summary>Reports may come late or twice; those that do not move a current replica forward change nothing.</summary>
    private static IReadOnlyList<object> Report(RecordReplicaReport c, Volume state)
    {
        var replica = state.Replica(c.HostId);
        if (replica is null || state.Deleted) return [];
        IReadOnlyList<object> events = (c.Report, replica.Phase) switch
        {
            (ReplicaErased, _) => [new VolumeReplicaErased(c.VolumeId, c.HostId, c.At)],
            (ReplicaHostFailed f, _) => [new VolumeReplicaLost(c.VolumeId, c.HostId, f.Reason, c.At)],
            (_, ReplicaPhase.Erasing) => [],
            (ReplicaFailed f, _) => [new VolumeReplicaFailed(c.VolumeId, c.HostId, f.Reason, c.At)],
            (ReplicaBad b, ReplicaPhase.Healthy) => [new VolumeReplicaBad(c.VolumeId, c.HostId, b.Offset, b.Length, b.Detail, c.At)],
            (ReplicaBad, _) => [],
            (ReplicaReady { Export: { } export }, ReplicaPhase.Provisioning) =>
                replica.Export == export ? [] : [new VolumeReplicaExported(c.VolumeId, c.HostId, export.Address, export.Port, c.At)],
            (ReplicaReady { NewKeyId: { } key } r, ReplicaPhase.Provisioning) when replica.MakesKey && state.KeyId is null =>
                [new VolumeKeyCreated(c.VolumeId, key, c.HostId, r.KekId ?? "", c.At), new VolumeReplicaHealthy(c.VolumeId, c.HostId, r.Encrypted, c.At)],
            (ReplicaReady { NewKeyId: not null }, ReplicaPhase.Provisioning) =>
                [new VolumeReplicaFailed(c.VolumeId, c.HostId, "the replica made a data key of its own although the volume has one", c.At)],
            (ReplicaReady r, ReplicaPhase.Provisioning) when state.KeyId is not null =>
                [new VolumeReplicaHealthy(c.VolumeId, c.HostId, r.Encrypted, c.At)],
            _ => [],
        };
        var after = events.Aggregate(state, (s, e) => s.Evolve(e));
        return [.. events, .. Completion(after, c.At)];
    }

    private static IReadOnlyList<object> StartWork(StartVolumeWork c, Volume state)
    {
        if (state.Work is { } current)
        {
            if (!c.Abandon || current.WorkerHostId != c.WorkerHostId) return [];
            return [new VolumeWorkFailed(c.VolumeId, current.WorkerHostId, current.Replica, $"its host {current.WorkerHostName} is gone", c.At)];
        }
        if (c.Abandon) return [];
        return state.PendingWork(c.WorkerHostId, c.WorkerHostName, c.VmId, c.At) switch
        {
            null => [],
            { Scrub: true } work => [new VolumeScrubStarted(c.VolumeId, c.WorkerHostId, c.WorkerHostName, work.VmId, c.At)],
            { Replica: null } => [new VolumeFormatStarted(c.VolumeId, c.WorkerHostId, c.WorkerHostName, c.At)],
            { Replica: { } replica } work => [new VolumeReplicaResyncStarted(c.VolumeId, replica, c.WorkerHostId, c.WorkerHostName, work.VmId, c.At)],
        };
    }

    /// <summary>Only the current work's host is listened to: a late report of an abandoned attempt changes nothing.</summary>
    private static IReadOnlyList<object> WorkReported(RecordWorkReport c, Volume state)
    {
        if (state.Work is not { } work || work.WorkerHostId != c.WorkerHostId || state.Deleting) return [];
        return (c.Report, work.Replica) switch
        {
            (VolumeFormatDone done, null) when state.KeyId is null =>
            [
                new VolumeKeyCreated(c.VolumeId, done.KeyId, c.WorkerHostId, done.KekId, c.At),
                .. state.Replicas.Where(r => r is { Phase: ReplicaPhase.Provisioning, Export: not null })
                    .Select(r => (object)new VolumeReplicaHealthy(c.VolumeId, r.HostId, true, c.At)),
            ],
            (ResyncProgressed p, { } replica) when p.ReplicaHostId == replica =>
                [new VolumeReplicaResyncProgressed(c.VolumeId, replica, p.SyncedBytes, p.TotalBytes, p.BytesPerSecond, c.At)],
            (ResyncDone d, { } replica) when d.ReplicaHostId == replica && state.Replica(replica) is { Phase: ReplicaPhase.Provisioning } =>
                [new VolumeReplicaResynced(c.VolumeId, replica, d.Bytes, d.Seconds, d.PauseMs, c.At), new VolumeReplicaHealthy(c.VolumeId, replica, true, c.At)],
            (ScrubDone d, null) when work.Scrub => Scrubbed(c, d, state),
            (WorkFailed f, var replica) when f.ReplicaHostId == replica => [new VolumeWorkFailed(c.VolumeId, c.WorkerHostId, replica, f.Reason, c.At)],
            _ => [],
        };
    }

    private static IReadOnlyList<object> Scrub(ScrubVolume c, Volume state)
    {
        if (c.Every is { } every)
            return state.ScrubDue(c.At, every) ? [new VolumeScrubRequested(c.VolumeId, c.By.Actor, c.At)] : [];
        if (c.By.Role is not (Role.Operator or Role.Admin))
            throw DomainException.Forbidden("Only an ADMIN of the volume's tenant or an OPERATOR asks for a scrub.");
        if (!state.OnBlockExports)
            throw new DomainException(ErrorCode.Precondition,
                $"Volume {state.Name} keeps no bytes on storage hosts (simulated storage holds keys only): there is nothing to compare.");
        return state.ScrubRequestedAt is null ? [new VolumeScrubRequested(c.VolumeId, c.By.Actor, c.At)] : [];
    }

    /// <summary>Only replicas still healthy are failed: a replica lost while the scrub ran is gone already.</summary>
    private static IReadOnlyList<object> Scrubbed(RecordWorkReport c, ScrubDone d, Volume state)
    {
        var named = d.Bad.GroupBy(b => b.ReplicaHostId).Select(g => g.First())
            .Where(b => state.Replica(b.ReplicaHostId) is { Phase: ReplicaPhase.Healthy }).ToList();
        // Each block has its own majority: replicas outvoted at different blocks cannot all go, or too few would be left to
        // take writes (and to copy from). Those past the write quorum stay, and the difference is named.
        var spare = Math.Max(0, state.Healthy - Volume.WriteQuorum(state.Class));
        var bad = named.Take(spare).Select(b => (object)new VolumeReplicaBad(c.VolumeId, b.ReplicaHostId, b.Offset, b.Length, b.Detail, c.At)).ToList();
        var kept = named.Skip(spare).Select(b => $"replica on {state.Replica(b.ReplicaHostId)!.HostName} differs at byte {b.Offset} ({b.Detail})").ToList();
        var unresolved = string.Join("; ", new[] { d.Unresolved }.Concat(kept).Where(x => !string.IsNullOrEmpty(x)));
        return [.. bad, new VolumeScrubbed(c.VolumeId, d.Bytes, d.Seconds, bad.Count, unresolved.Length == 0 ? null : unresolved, c.At)];
    }

    /// <summary>A volume being deleted is gone once no replica holds its data key any more.</summary>
    private static IEnumerable<object> Completion(Volume after, DateTimeOffset at) =>
        after is { Deleting: true, Deleted: false, Replicas.IsEmpty: true }
            ? [new VolumeKeysDestroyed(after.Id, after.KeyId, at), new VolumeDeleted(after.Id, at)]
            : [];

    private static void RequireMountPath(string path)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/' || path == "/" || path.Length > 255 || path.Any(char.IsControl)
            || path.Split('/').Any(part => part is "." or ".."))
            throw DomainException.Validation($"mountPath '{path}' must be an absolute path below / (at most 255 characters, no '.' or '..').");
    }
}

/// <summary>What host runtimes must do after a volume changed: derived from the state before and after, never stored.</summary>
public static class VolumeReactions
{
    /// <summary>Set up a replica; <paramref name="WithKey"/> false for the replica that generates the data key.</summary>
    public sealed record Provision(VolumeReplica Replica, bool WithKey);

    /// <summary>Destroy whatever the host holds of the volume (its key copy and data).</summary>
    public sealed record Destroy(Guid HostId, string HostName);

    public static IReadOnlyList<object> HostCommands(Volume before, Volume after)
    {
        var commands = new List<object>();
        foreach (var r in after.Replicas)
        {
            var was = before.Replica(r.HostId);
            // A new replica is told at once unless it must wait for the key maker (see Volume.AwaitsAnswer): on block
            // exports nobody waits, not even a replacement placed between the first export and the format.
            if (was is null && after.AwaitsAnswer(r))
                commands.Add(new Provision(r, WithKey: !r.MakesKey && !after.OnBlockExports));
            // The key maker was lost before it answered: the replica that inherited the task is set up now.
            if (was is { MakesKey: false } && r is { MakesKey: true, Phase: ReplicaPhase.Provisioning })
                commands.Add(new Provision(r, WithKey: false));
            // The key exists now: the replicas that waited for it are set up.
            if (was is not null && before.KeyId is null && after.KeyId is not null && r is { Phase: ReplicaPhase.Provisioning, MakesKey: false }
                && !after.OnBlockExports)
                commands.Add(new Provision(r, WithKey: true));
            // The first replica turned out to be a block export, which needs no key: the others are set up now (empty),
            // and a compute host writes the key's LUKS header through all of them.
            if (was is not null && !before.OnBlockExports && after.OnBlockExports && r is { Phase: ReplicaPhase.Provisioning, MakesKey: false, Export: null })
                commands.Add(new Provision(r, WithKey: false));
            if (r.Phase == ReplicaPhase.Erasing && was is { Phase: not ReplicaPhase.Erasing })
                commands.Add(new Destroy(r.HostId, r.HostName));
        }
        // A replica that failed or whose host failed may still hold data: erased when its host is reachable again.
        foreach (var gone in before.Replicas.Where(r => r.Phase != ReplicaPhase.Erasing && after.Replica(r.HostId) is null))
            commands.Add(new Destroy(gone.HostId, gone.HostName));
        return commands;
    }

    /// <summary>Replicas whose storage is no longer reserved on their host.</summary>
    public static IReadOnlyList<VolumeReplica> Released(Volume before, Volume after) =>
        before.Replicas.Where(r => after.Replica(r.HostId) is null).ToList();

    public static IReadOnlyList<VolumeReplica> Reserved(Volume before, Volume after) =>
        after.Replicas.Where(r => before.Replica(r.HostId) is null).ToList();
}
