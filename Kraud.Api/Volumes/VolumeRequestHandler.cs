using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Domain.Scheduling;
using Kraud.Domain.Volumes;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>A tenant's volume command as the API received it, with the version the caller expects the volume to be at.</summary>
public sealed record VolumeRequest(VolumeCommand Command, Principal By, int? ExpectedVersion = null) : ICommandRequest
{
    object ICommandRequest.Command => Command;
}

public static class VolumeRequestHandler
{
    public static async Task Handle(VolumeRequest request, IDocumentSession session, IMessageContext context, IPods pods)
    {
        request.By.RequireWriter();
        switch (request.Command)
        {
            case CreateVolume create:
                await CreateAsync(session, context, create, request.By, request.ExpectedVersion);
                break;
            case AttachVolume attach:
                await VolumeAttachments.AttachAsync(session, context, pods, attach, request.By, request.ExpectedVersion);
                break;
            case DetachVolume detach:
                await VolumeAttachments.DetachAsync(session, context, pods, detach, request.By, request.ExpectedVersion);
                break;
            default:
                await VolumeStreams.ExecuteAsync(session, context, request.Command, request.By, request.ExpectedVersion);
                break;
        }
    }

    public static async Task CreateAsync(IDocumentSession session, IMessageContext context, CreateVolume create, Principal by, int? expectedVersion = null)
    {
        await VolumeStreams.ExecuteAsync(session, context, create, by, expectedVersion);
        // Same transaction as the first event: of two creates with one name, the second fails at commit.
        session.Insert(new NameClaim { Id = NameClaim.For("volume", create.TenantId.ToString(), create.Name), OwnerId = create.VolumeId });
    }
}

/// <summary>
/// Attaching touches two streams: the volume decides whether it may be attached (one pod at a time for BLOCK, same
/// zone), the pod records the mount and restarts its microVMs with it. Both append in one transaction, each with its
/// expected version, so a concurrent attach of the same BLOCK volume fails with CONFLICT.
/// </summary>
public static class VolumeAttachments
{
    public static async Task AttachAsync(IDocumentSession session, IMessageContext context, IPods pods, AttachVolume attach, Principal by,
        int? expectedVersion)
    {
        var pod = await LoadPodAsync(session, attach.PodId, by);
        var volume = await VolumeStreams.FetchForWritingAsync(session, attach.VolumeId);
        if (volume.State.Exists && volume.State.TenantId != pod.TenantId) throw DomainException.NotFound("Volume", attach.VolumeId);
        if (pod.Live.Any() && volume.State is { Exists: true, Usable: false } v)
            throw new DomainException(ErrorCode.Precondition,
                $"Volume {v.Name} is {v.State.ToString().ToUpperInvariant()}: the pod's microVMs would restart without it. Attach it once it is HEALTHY.");
        var after = await VolumeStreams.ExecuteAsync(session, context, attach with { PodZone = await ZoneOfAsync(session, pod) }, by, expectedVersion,
            loaded: volume);
        await pods.ExecuteAsync(session, context,
            new AttachPodVolume(pod.Id, new VolumeMount(after.Id, attach.MountPath, attach.ReadOnly, after.Class), by, attach.At), by);
    }

    public static async Task DetachAsync(IDocumentSession session, IMessageContext context, IPods pods, DetachVolume detach, Principal by,
        int? expectedVersion)
    {
        await VolumeStreams.ExecuteAsync(session, context, detach, by, expectedVersion);
        var pod = await Streams.FetchForWritingAsync<Pod>(session, detach.PodId);
        if (pod.State is { Exists: true, Deleting: false })
            await pods.ExecuteAsync(session, context, new DetachPodVolume(detach.PodId, detach.VolumeId, by, detach.At), by, loaded: pod);
    }

    /// <summary>A new pod's mounts get the class of their volume, which the caller may not know; volumes of other tenants do not exist for it.</summary>
    public static async Task<CreatePod> ResolveMountsAsync(IQuerySession session, CreatePod create)
    {
        if (create.Spec.Mounts.Count == 0) return create;
        var mounts = new List<VolumeMount>();
        foreach (var mount in create.Spec.Mounts)
        {
            var volume = (await Streams.LoadAsync<Volume>(session, mount.VolumeId)).State;
            if (!volume.Exists || volume.Deleted || volume.TenantId != create.TenantId) throw DomainException.NotFound("Volume", mount.VolumeId);
            mounts.Add(mount with { Class = volume.Class });
        }
        return create with { Spec = create.Spec with { Volumes = mounts } };
    }

    /// <summary>
    /// The volumes a new pod mounts record the attachment in the pod's own transaction. An owned pod acts for its owner, so
    /// an app's pods mount the app's volumes, and nobody else's pods do.
    /// </summary>
    public static async Task AttachNewPodAsync(IDocumentSession session, IMessageContext context, Pod pod, Principal by, DateTimeOffset at)
    {
        foreach (var mount in pod.Spec.Mounts)
            await VolumeStreams.ExecuteAsync(session, context,
                new AttachVolume(mount.VolumeId, pod.Id, pod.Spec.Zone, mount.MountPath, mount.ReadOnly, by, at, pod.Owner?.Id), by);
    }

    /// <summary>
    /// A pod that stopped for good lets go of its volumes (a BLOCK volume may then be attached elsewhere). That is a
    /// consequence, not a request, so an owned volume lets go too.
    /// </summary>
    public static async Task ReleaseAsync(IDocumentSession session, IMessageContext context, Pod pod, Principal by, DateTimeOffset at)
    {
        foreach (var mount in pod.Spec.Mounts)
        {
            var volume = await VolumeStreams.FetchForWritingAsync(session, mount.VolumeId);
            // A volume deleted meanwhile (a GFS volume is deleted while its own file server still stops) has let go already.
            if (!volume.State.Deleted && volume.State.Attachments.Any(a => a.PodId == pod.Id))
                await VolumeStreams.ExecuteAsync(session, context, new DetachVolume(mount.VolumeId, pod.Id, by, at, volume.State.Owner?.Id), Principal.System("volumes"),
                    loaded: volume);
        }
    }

    private static async Task<Pod> LoadPodAsync(IQuerySession session, Guid podId, Principal by)
    {
        var pod = (await Streams.LoadAsync<Pod>(session, podId)).State;
        if (!pod.Exists || (by.TenantId is { } tenant && pod.TenantId != tenant)) throw DomainException.NotFound("Pod", podId);
        if (pod.Deleting) throw new DomainException(ErrorCode.Precondition, $"Pod {podId} is being deleted.");
        return pod;
    }

    private static async Task<string?> ZoneOfAsync(IQuerySession session, Pod pod)
    {
        var host = pod.Live.Select(i => i.HostId).FirstOrDefault();
        return host == Guid.Empty ? pod.Spec.Zone : (await session.LoadAsync<HostView>(host))?.Zone ?? pod.Spec.Zone;
    }
}

/// <summary>What a compute host needs to mount a pod's volumes: where the replicas are, and the wrapped data key.</summary>
public static class VolumeMounts
{
    /// <summary>Where the pod's volumes let it run (the pod's own zone request included).</summary>
    public static async Task<VolumeAffinity.Verdict> AffinityAsync(IQuerySession session, Pod pod)
    {
        if (pod.Spec.Mounts.Count == 0) return new VolumeAffinity.Go(pod.Spec.Zone);
        var views = (await ReadAhead.LoadManyAsync<VolumeView, Guid>(session, pod.Spec.Mounts.Select(m => m.VolumeId).ToArray())).ToDictionary(v => v.Id);
        var verdict = VolumeAffinity.For(pod.Spec.Zone, pod.Spec.Mounts.Select(m => (m.VolumeId, views.GetValueOrDefault(m.VolumeId)?.Volume)).ToList());
        if (verdict is not VolumeAffinity.Go) return verdict;
        // A shared volume's pods mount it from its file server: they start once it serves (FileServerChanged asks again then).
        foreach (var volume in views.Values.Select(v => v.Volume).Where(v => FileServer.Serves(v) && !FileServer.IsServer(pod, v.Id)))
            if (FileServer.Address((await session.LoadAsync<PodView>(FileServer.PodId(volume.Id)))?.Pod) is null)
                return new VolumeAffinity.Wait($"the file server of volume {volume.Name} is not serving yet");
        return verdict;
    }

    /// <summary>
    /// The volumes of one microVM that boots: for block exports also where they are and its own access to them, granted on
    /// every replica now (in the same transaction as the boot command, so both or neither leave).
    /// </summary>
    /// <summary>Names what <see cref="AffinityAsync"/> and <see cref="ForBootAsync"/> read for these pods (see <see cref="ReadAhead"/>).</summary>
    public static void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods)
    {
        var ids = pods.SelectMany(p => p.Spec.Mounts).Select(m => m.VolumeId).ToList();
        ahead.LoadMany<VolumeView, Guid>(ids, v => v.Id);
        ahead.LoadMany<VolumeKeyRecord, Guid>(ids, k => k.Id);
    }

    public static async Task<IReadOnlyList<VolumeAttachmentSpec>> ForBootAsync(IDocumentSession session, IMessageContext context, Pod pod, PodInstance vm)
    {
        if (pod.Spec.Mounts.Count == 0) return [];
        var ids = pod.Spec.Mounts.Select(m => m.VolumeId).ToArray();
        var views = (await ReadAhead.LoadManyAsync<VolumeView, Guid>(session, ids)).ToDictionary(v => v.Id);
        var keys = (await ReadAhead.LoadManyAsync<VolumeKeyRecord, Guid>(session, ids)).ToDictionary(k => k.Id, k => k.Key);
        var specs = new List<VolumeAttachmentSpec>();
        foreach (var m in pod.Spec.Mounts)
        {
            var volume = views.GetValueOrDefault(m.VolumeId)?.Volume;
            var spec = new VolumeAttachmentSpec(m.VolumeId, m.Class.ToString().ToUpperInvariant(), m.MountPath, m.ReadOnly, volume?.SizeGiB ?? 0,
                keys.GetValueOrDefault(m.VolumeId), volume?.Replicas.Where(r => r.Phase == ReplicaPhase.Healthy).Select(r => r.HostName).ToList() ?? []);
            if (volume is not null && FileServer.Serves(volume) && !FileServer.IsServer(pod, volume.Id))
            {
                // Mounted over the VPC from the file server: the client gets neither a key nor access to the exports.
                var server = (await session.LoadAsync<PodView>(FileServer.PodId(volume.Id)))?.Pod;
                specs.Add(spec with
                {
                    Key = null,
                    ReplicaHosts = [],
                    FileServer = FileServer.Address(server) ?? FileServer.Addressed(server) ?? throw new DomainException(ErrorCode.Precondition,
                        $"the file server of volume {volume.Name} has no address yet: pods that mount it start once it serves"),
                });
                continue;
            }
            specs.Add(volume is null ? spec : await VolumeExportAccess.ForBootAsync(session, context, spec, volume, vm));
        }
        return specs;
    }

    /// <summary>A microVM that is gone loses its access to the pod's volumes.</summary>
    public static async Task ReleaseAsync(IDocumentSession session, IMessageContext context, Pod pod, PodInstance vm)
    {
        if (pod.Spec.Mounts.Count == 0) return;
        var views = await session.LoadManyAsync<VolumeView>(pod.Spec.Mounts.Select(m => m.VolumeId).ToArray());
        foreach (var view in views) await VolumeExportAccess.RevokeVmAsync(session, context, view.Volume, vm.VmId);
    }
}
