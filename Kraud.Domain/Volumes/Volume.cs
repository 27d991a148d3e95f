using System.Collections.Immutable;
using Kraud.Domain.Common;

namespace Kraud.Domain.Volumes;

public enum ReplicaPhase { Provisioning, Healthy, Failed, Erasing }

public sealed record VolumeReplica(Guid HostId, string HostName, ReplicaPhase Phase, bool MakesKey, bool Encrypted, DateTimeOffset Since)
{
    /// <summary>Where the replica's block export listens (real storage hosts); null for simulated storage, which holds keys only.</summary>
    public ExportAddress? Export { get; init; }

    /// <summary>How far filling this replica from its healthy peers has come (the last figures once it is done).</summary>
    public ResyncProgress? Resync { get; init; }
}

/// <summary>A storage host's NBD export of one replica: only ciphertext goes in and out of it.</summary>
public sealed record ExportAddress(string Address, int Port);

public sealed record ResyncProgress(long SyncedBytes, long TotalBytes, double BytesPerSecond);

/// <summary>
/// Work on a volume of block exports that needs a compute host (which holds keys; storage hosts never do): writing the
/// LUKS header with a new data key (<paramref name="Replica"/> null), or filling a replica from its healthy peers.
/// </summary>
/// <param name="VmId">The microVM whose QEMU does it online (it has the volume attached); null: the worker does it with no guest.</param>
public sealed record VolumeWork(Guid? Replica, Guid WorkerHostId, string WorkerHostName, Guid? VmId, DateTimeOffset Since)
{
    /// <summary>A scrub: every replica is read and compared (<see cref="Replica"/> is null, as for a format).</summary>
    public bool Scrub { get; init; }
}

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

    /// <summary>Since when no storage host could take the volume's missing replicas (the start of this refusal); null when placed.</summary>
    public DateTimeOffset? PlacementRefusedSince { get; init; }

    /// <summary>The work running on the volume now (see <see cref="VolumeWork"/>); null when none.</summary>
    public VolumeWork? Work { get; init; }

    /// <summary>A scrub was asked for and has not run yet (see <see cref="VolumeScrubRequested"/>).</summary>
    public DateTimeOffset? ScrubRequestedAt { get; init; }

    /// <summary>When the last scrub finished; null before the first.</summary>
    public DateTimeOffset? LastScrubbedAt { get; init; }

    /// <summary>
    /// Where the last scrub found the replicas disagreeing with no majority to say which is right (a RED volume's two copies
    /// always, or replicas outvoted beyond what a write quorum lets go); null when it found none. Nothing proves which copy
    /// holds the data (the replicas hold LUKS ciphertext with no checksums), so the volume keeps them all, is DEGRADED, and
    /// waits for its owner to write the data there again (a write reaches every copy), and for a scrub that finds them equal.
    /// </summary>
    public string? ScrubDifference { get; init; }

    /// <summary>
    /// The periodic scrub is due: the volume keeps bytes on storage hosts, none is asked for, and its replicas went uncompared
    /// (since its last scrub, else since it was made) for <paramref name="every"/> or longer.
    /// </summary>
    public bool ScrubDue(DateTimeOffset at, TimeSpan every) =>
        OnBlockExports && !Deleting && ScrubRequestedAt is null && (LastScrubbedAt ?? CreatedAt) + every <= at;

    /// <summary>Its replicas are block exports on real storage hosts: compute hosts write the data key's LUKS header and copy replicas.</summary>
    public bool OnBlockExports => Replicas.Any(r => r.Export is not null);

    /// <summary>
    /// What a compute host must do next for a volume on block exports: format it once every replica serves (no key yet),
    /// or fill a served replica that is not healthy from the healthy ones. Null when nothing waits (or it is being deleted).
    /// </summary>
    public VolumeWork? PendingWork(Guid workerHostId, string workerHostName, Guid? vmId, DateTimeOffset at)
    {
        if (!Exists || Deleting || Deleted || !OnBlockExports) return null;
        var live = Replicas.Where(r => r.Phase != ReplicaPhase.Erasing).ToList();
        if (KeyId is null)
            return live.Count == Desired && live.All(r => r.Export is not null) ? new VolumeWork(null, workerHostId, workerHostName, null, at) : null;
        if (Healthy == 0) return null;
        if (live.FirstOrDefault(r => r is { Phase: ReplicaPhase.Provisioning, Export: not null }) is { } target)
            return new VolumeWork(target.HostId, workerHostId, workerHostName, vmId, at);
        // A scrub compares what every replica holds: it waits until all of them are healthy (a replacement's check compares them anyway).
        return ScrubRequestedAt is not null && Healthy == Desired && live.Count == Desired
            ? new VolumeWork(null, workerHostId, workerHostName, vmId, at) { Scrub = true }
            : null;
    }

    /// <summary>
    /// The replica's storage host has been told to set it up (see <see cref="VolumeReactions.HostCommands"/>) and has not
    /// answered: a simulated replica answers by becoming healthy, a block export by saying where it listens.
    /// </summary>
    public bool AwaitsAnswer(VolumeReplica r) =>
        !Deleting && r is { Phase: ReplicaPhase.Provisioning, Export: null } && (r.MakesKey || KeyId is not null || OnBlockExports);

    /// <summary>Work is waiting for a compute host to take it.</summary>
    public bool NeedsWorker => Work is null && PendingWork(Guid.Empty, "", null, default) is not null;

    /// <summary>The product table: BLOCK and GFS keep three copies in one zone, RED two.</summary>
    public static int DesiredReplicas(VolumeClass c) => c switch
    {
        VolumeClass.Block or VolumeClass.Gfs => 3,
        VolumeClass.Red => 2,
        _ => 0,
    };

    public int Desired => DesiredReplicas(Class);

    /// <summary>
    /// How many healthy copies a write needs before it is acknowledged, and so how many keep the volume usable: a majority
    /// for BLOCK and GFS (2 of 3), one for RED. RED is the archival class the product sells as "serves with one of its two
    /// copies gone": a majority of two is both, which would make every lost RED copy an outage.
    /// </summary>
    public static int WriteQuorum(VolumeClass c) => c == VolumeClass.Red ? 1 : DesiredReplicas(c) / 2 + 1;

    public int Healthy => Replicas.Count(r => r.Phase == ReplicaPhase.Healthy);

    /// <summary>Replicas the scheduler still has to find a storage host for.</summary>
    public int Unplaced => Deleting || !Exists ? 0 : Math.Max(0, Desired - Replicas.Count(r => r.Phase != ReplicaPhase.Erasing));

    /// <summary>
    /// Healthy when every copy is and the last scrub found no difference it could not resolve (<see cref="ScrubDifference"/>);
    /// once it has been healthy, a write quorum of healthy copies keeps it usable (DEGRADED) and fewer make it UNAVAILABLE
    /// (see <see cref="WriteQuorum"/>). Before that it is PENDING until placed and PROVISIONING until every copy is ready.
    /// </summary>
    public VolumeState State
    {
        get
        {
            if (Deleted) return VolumeState.Deleted;
            if (Deleting) return VolumeState.Unavailable;
            if (Healthy == Desired) return ScrubDifference is null ? VolumeState.Healthy : VolumeState.Degraded;
            if (!WasHealthy) return Replicas.IsEmpty ? VolumeState.Pending : VolumeState.Provisioning;
            return Healthy >= WriteQuorum(Class) ? VolumeState.Degraded : VolumeState.Unavailable;
        }
    }

    /// <summary>Pods may start with it: its data is reachable through a write quorum of healthy copies.</summary>
    public bool Usable => State is VolumeState.Healthy or VolumeState.Degraded;

    public string? Reason => State switch
    {
        VolumeState.Unavailable when Deleting => "being deleted: the data keys are destroyed on every replica",
        VolumeState.Unavailable => $"only {Healthy} of {Desired} replicas are healthy, fewer than a write needs ({WriteQuorum(Class)}): pods that need this volume do not start",
        VolumeState.Degraded when Healthy == Desired =>
            $"its replicas differ and nothing shows which holds the data ({ScrubDifference}): write the data there again (or restore it), then scrub the volume",
        VolumeState.Degraded => $"{Healthy} of {Desired} replicas are healthy; " +
                                (PlacementRefusal is null ? "the missing ones are being re-replicated" : $"no replacement can be placed: {PlacementRefusal}"),
        VolumeState.Pending or VolumeState.Provisioning when PlacementRefusal is not null => PlacementRefusal,
        _ => null,
    };

    /// <summary>Every healthy copy was encrypted by its host runtime, which said so; nothing is assumed.</summary>
    public bool Encrypted => KeyId is not null && Healthy > 0 && Replicas.Where(r => r.Phase == ReplicaPhase.Healthy).All(r => r.Encrypted);

    public VolumeReplica? Replica(Guid hostId) => Replicas.FirstOrDefault(r => r.HostId == hostId);

    /// <summary>
    /// The replica on the host is gone. When it was to make the data key and nothing else made one yet, the next replica
    /// waiting makes it instead: the others wait for a key maker (or, on storage hosts, for the first export), and without
    /// one they would wait until a replacement could be placed, which a zone with no spare storage host never does.
    /// </summary>
    private Volume Without(Guid hostId)
    {
        var next = this with
        {
            Replicas = Replicas.RemoveAll(r => r.HostId == hostId),
            FailedOn = FailedOn.Add(hostId),
            Work = Work?.Replica == hostId ? null : Work,
        };
        if (next.KeyId is not null || next.OnBlockExports || next.Replicas.Any(r => r.MakesKey)
            || next.Replicas.FirstOrDefault(r => r.Phase == ReplicaPhase.Provisioning) is not { } heir) return next;
        return next.Update(heir.HostId, r => r with { MakesKey = true });
    }

    public Volume Evolve(object @event) => @event switch
    {
        VolumeRequested e => new Volume(e.VolumeId, e.TenantId, e.Name, e.Class, e.SizeGiB, e.Zone, true, false, false, null, [], [], null, false, e.At),
        VolumeOwnedBy e => this with { Owner = e.Owner },
        VolumePlacementRefused e => this with { PlacementRefusal = e.Reason, PlacementRefusedSince = PlacementRefusal is null ? e.At : PlacementRefusedSince },
        VolumeReplicaScheduled e => this with
        {
            Zone = e.Zone,
            PlacementRefusal = null,
            PlacementRefusedSince = null,
            Replicas = Replicas.Add(new VolumeReplica(e.HostId, e.HostName, ReplicaPhase.Provisioning, e.MakesKey, false, e.At)),
        },
        VolumeKeyCreated e => this with { KeyId = e.KeyId, Work = Work?.Replica is null ? null : Work },
        VolumeReplicaHealthy e => Update(e.HostId, r => r with { Phase = ReplicaPhase.Healthy, Encrypted = e.Encrypted, Since = e.At }).NoteHealth(),
        VolumeReplicaFailed e => Without(e.HostId),
        VolumeReplicaLost e => Without(e.HostId),
        VolumeReplicaBad e => Without(e.HostId),
        VolumeScrubRequested e => this with { ScrubRequestedAt = ScrubRequestedAt ?? e.At },
        VolumeScrubStarted e => this with { Work = new VolumeWork(null, e.WorkerHostId, e.WorkerHostName, e.VmId, e.At) { Scrub = true } },
        VolumeScrubbed e => this with { Work = null, ScrubRequestedAt = null, LastScrubbedAt = e.At, ScrubDifference = e.Unresolved },
        VolumeReplicaExported e => Update(e.HostId, r => r with { Export = new ExportAddress(e.Address, e.Port) }),
        VolumeFormatStarted e => this with { Work = new VolumeWork(null, e.WorkerHostId, e.WorkerHostName, null, e.At) },
        VolumeReplicaResyncStarted e => this with { Work = new VolumeWork(e.HostId, e.WorkerHostId, e.WorkerHostName, e.VmId, e.At) },
        VolumeReplicaResyncProgressed e => Update(e.HostId, r => r with { Resync = new ResyncProgress(e.SyncedBytes, e.TotalBytes, e.BytesPerSecond) }),
        VolumeReplicaResynced e => Update(e.HostId, r => r with { Resync = new ResyncProgress(e.Bytes, e.Bytes, e.Seconds > 0 ? e.Bytes / e.Seconds : 0) })
            with
        { Work = null },
        // A scrub that failed is not asked again at once: the next round (or an admin) asks for another.
        VolumeWorkFailed => this with { Work = null, ScrubRequestedAt = Work is { Scrub: true } ? null : ScrubRequestedAt },
        VolumeAttached e => this with { Attachments = Attachments.Add(new VolumeAttachment(e.PodId, e.MountPath, e.ReadOnly)) },
        VolumeDetached e => this with { Attachments = Attachments.RemoveAll(a => a.PodId == e.PodId) },
        VolumeDeletionRequested e => this with
        {
            Deleting = true,
            Work = null,
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
