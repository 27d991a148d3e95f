using System.Security.Cryptography;
using Kraud.Api.Common;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>
/// A client admitted to a volume's block exports: the QEMU of one microVM that mounts it, or the compute host doing its
/// work (format, resync) while no guest has it. Every storage host of the volume knows the same identity and key; the
/// document exists so that a replica served later (a replacement) admits the same clients. Not an event: the key is a
/// secret, and the log is exported.
/// </summary>
public sealed class ExportGrant
{
    public string Id { get; set; } = "";
    public Guid VolumeId { get; set; }
    public string Identity { get; set; } = "";
    public Guid ClientHostId { get; set; }
    public string ClientHostName { get; set; } = "";
    public Guid? VmId { get; set; }
    public string Psk { get; set; } = "";

    public ExportAccess Access => new(Identity, Psk);

    public static string IdFor(Guid volumeId, string identity) => $"{volumeId}/{identity}";
}

/// <summary>Who may reach a volume's exports, and the work that needs a compute host; the rest of the volume slice calls this.</summary>
public static class VolumeExportAccess
{
    public static string VmIdentity(Guid vmId) => $"vm-{vmId:N}";

    /// <summary>One identity per piece of work: a revocation of an earlier attempt's can never take the next one's access away.</summary>
    public static string WorkerIdentity(Guid hostId, DateTimeOffset since) =>
        $"worker-{hostId:N}-{since.UtcTicks.ToString("x", System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>How many replicas take a write before the guest hears it is done: the class's write quorum (never more than it has).</summary>
    public static int VoteThreshold(VolumeClass c, int replicas) => Math.Max(1, Math.Min(Volume.WriteQuorum(c), replicas));

    public static IReadOnlyList<ExportEndpoint> HealthyExports(Volume volume) =>
        volume.Replicas.Where(r => r is { Phase: ReplicaPhase.Healthy, Export: not null })
            .Select(r => new ExportEndpoint(r.HostId, r.HostName, r.Export!.Address, r.Export.Port)).ToList();

    private static ExportEndpoint Endpoint(VolumeReplica r) => new(r.HostId, r.HostName, r.Export!.Address, r.Export.Port);

    /// <summary>Admits the client on every replica that serves the volume (the key stays the one it had, if it had one).</summary>
    public static async Task<ExportAccess> GrantAsync(IDocumentSession session, IMessageContext context, Volume volume, string identity, Guid clientHostId,
        string clientHostName, Guid? vmId)
    {
        var grant = await session.LoadAsync<ExportGrant>(ExportGrant.IdFor(volume.Id, identity)) ?? new ExportGrant
        {
            Id = ExportGrant.IdFor(volume.Id, identity), VolumeId = volume.Id, Identity = identity,
            Psk = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
        };
        grant.ClientHostId = clientHostId;
        grant.ClientHostName = clientHostName;
        grant.VmId = vmId;
        session.Store(grant);
        foreach (var replica in volume.Replicas.Where(r => r is { Export: not null } && r.Phase != ReplicaPhase.Erasing))
            await context.EndpointFor(HostQueues.Uri(replica.HostName)).SendAsync(new GrantExportAccess(replica.HostId, volume.Id, grant.Access));
        return grant.Access;
    }

    public static async Task RevokeAsync(IDocumentSession session, IMessageContext context, Volume volume, string identity)
    {
        session.Delete<ExportGrant>(ExportGrant.IdFor(volume.Id, identity));
        foreach (var replica in volume.Replicas.Where(r => r.Export is not null))
            await context.EndpointFor(HostQueues.Uri(replica.HostName)).SendAsync(new RevokeExportAccess(replica.HostId, volume.Id, identity));
    }

    /// <summary>What a compute host needs to boot a microVM with the volume: the healthy exports, its own access and the threshold.</summary>
    public static async Task<VolumeAttachmentSpec> ForBootAsync(IDocumentSession session, IMessageContext context, VolumeAttachmentSpec spec,
        Volume volume, PodInstance vm)
    {
        if (!volume.OnBlockExports) return spec;
        var exports = HealthyExports(volume);
        var access = await GrantAsync(session, context, volume, VmIdentity(vm.VmId), vm.HostId, vm.HostName, vm.VmId);
        return spec with { Exports = exports, Access = access, VoteThreshold = VoteThreshold(volume.Class, exports.Count), Replicas = volume.Desired };
    }

    /// <summary>A microVM that stopped or died has no business with the volume's exports any more.</summary>
    public static async Task RevokeVmAsync(IDocumentSession session, IMessageContext context, Volume volume, Guid vmId)
    {
        if (volume.OnBlockExports) await RevokeAsync(session, context, volume, VmIdentity(vmId));
    }

    /// <summary>The volume's export changes after a decision: new replicas admit its clients, work is handed out or finished.</summary>
    public static async Task ApplyAsync(IDocumentSession session, IMessageContext context, IReadOnlyList<object> events, Volume before, Volume after)
    {
        var grants = events.Any(e => e is VolumeReplicaExported or VolumeDeleted)
            ? await session.Query<ExportGrant>().Where(g => g.VolumeId == after.Id).ToListAsync()
            : [];
        foreach (var exported in events.OfType<VolumeReplicaExported>())
            foreach (var grant in grants)
                await context.EndpointFor(HostQueues.Uri(after.Replica(exported.HostId)!.HostName))
                    .SendAsync(new GrantExportAccess(exported.HostId, after.Id, grant.Access));
        if (events.OfType<VolumeDeleted>().Any())
            foreach (var grant in grants) session.Delete(grant);

        // Work that ended: a worker keeps no access it no longer needs (a guest's QEMU keeps its own until it stops).
        if (before.Work is { VmId: null } ended && after.Work is null && !after.Deleted)
            await RevokeAsync(session, context, after, WorkerIdentity(ended.WorkerHostId, ended.Since));

        foreach (var e in events)
        {
            switch (e)
            {
                case VolumeFormatStarted f:
                    {
                        var access = await GrantAsync(session, context, after, WorkerIdentity(f.WorkerHostId, f.At), f.WorkerHostId, f.WorkerHostName, null);
                        var exports = after.Replicas.Where(r => r.Export is not null && r.Phase != ReplicaPhase.Erasing).Select(Endpoint).ToList();
                        await context.EndpointFor(HostQueues.Uri(f.WorkerHostName)).SendAsync(new FormatVolume(f.WorkerHostId, after.Id, exports, access));
                        break;
                    }
                case VolumeScrubStarted c:
                    {
                        var access = c.VmId is { } vmId
                            ? (await session.LoadAsync<ExportGrant>(ExportGrant.IdFor(after.Id, VmIdentity(vmId))))?.Access
                              ?? await GrantAsync(session, context, after, VmIdentity(vmId), c.WorkerHostId, c.WorkerHostName, vmId)
                            : await GrantAsync(session, context, after, WorkerIdentity(c.WorkerHostId, c.At), c.WorkerHostId, c.WorkerHostName, null);
                        await context.EndpointFor(HostQueues.Uri(c.WorkerHostName))
                            .SendAsync(new ScrubVolumeReplicas(c.WorkerHostId, after.Id, c.VmId, HealthyExports(after), access));
                        break;
                    }
                case VolumeReplicaResyncStarted r:
                    {
                        var access = r.VmId is { } vmId
                            ? (await session.LoadAsync<ExportGrant>(ExportGrant.IdFor(after.Id, VmIdentity(vmId))))?.Access
                              ?? await GrantAsync(session, context, after, VmIdentity(vmId), r.WorkerHostId, r.WorkerHostName, vmId)
                            : await GrantAsync(session, context, after, WorkerIdentity(r.WorkerHostId, r.At), r.WorkerHostId, r.WorkerHostName, null);
                        var sources = HealthyExports(after);
                        await context.EndpointFor(HostQueues.Uri(r.WorkerHostName)).SendAsync(new ResyncVolumeReplica(r.WorkerHostId, after.Id, r.VmId,
                            Endpoint(after.Replica(r.HostId)!), sources, access, VoteThreshold(after.Class, sources.Count + 1)));
                        break;
                    }
            }
        }
        if (after.NeedsWorker) await context.PublishAsync(new FindVolumeWorker(after.Id));
    }
}
