using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.Volumes;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>
/// A volume on block exports has work for a compute host (format, resync), or its current work's host is gone.
/// <paramref name="Watching"/>: the work (its start) this look keeps an eye on; null for a look for a worker.
/// </summary>
public sealed record FindVolumeWorker(Guid VolumeId, DateTimeOffset? Watching = null);

/// <summary>
/// Picks the compute host for a volume's work. A microVM that has the volume attached does it in its own QEMU, online (its
/// guest keeps writing; a copy made beside it would miss those writes); otherwise the READY compute host of the volume's
/// zone that runs a real hypervisor and the fewest microVMs. Storage hosts never do it: the work needs the data key.
/// </summary>
/// <remarks>
/// Neither a compute host that fails nor one that joins the zone tells the volume: while its work runs, and while no worker
/// can be found, the handler looks again every <see cref="Retry"/> (a durable scheduled message to itself, one chain per
/// work, so no loop scans the volumes).
/// </remarks>
public static class FindVolumeWorkerHandler
{
    private static readonly Principal Scheduler = Principal.System("volume-worker");

    public static readonly TimeSpan Retry = TimeSpan.FromSeconds(2);

    public static async Task Handle(FindVolumeWorker request, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        var loaded = await VolumeStreams.FetchForWritingAsync(session, request.VolumeId);
        var volume = loaded.State;
        if (!volume.Exists || volume.Deleted) return;
        var now = time.GetUtcNow();
        if (volume.Work is { } work)
        {
            if (request.Watching is { } watched && watched != work.Since) return; // that work ended; this one has its own watch
            var host = await session.LoadAsync<HostView>(work.WorkerHostId);
            var vmGone = work.VmId is { } vm && await session.LoadAsync<ExportGrant>(ExportGrant.IdFor(volume.Id, VolumeExportAccess.VmIdentity(vm))) is null;
            if (host is { State: not HostState.Failed } && !vmGone)
            {
                if (request.Watching is not null) await context.ScheduleAsync(request, Retry);
                return;
            }
            // The abandonment asks for a worker again once it committed.
            await VolumeStreams.ExecuteAsync(session, context,
                new StartVolumeWork(volume.Id, work.WorkerHostId, work.WorkerHostName, work.VmId, Abandon: true, now), Scheduler, loaded: loaded);
            return;
        }
        if (!volume.NeedsWorker || request.Watching is not null) return;

        var grants = await session.Query<ExportGrant>().Where(g => g.VolumeId == volume.Id && g.VmId != null).ToListAsync();
        var hosts = (await session.Query<HostView>().Where(h => h.Zone == volume.Zone).ToListAsync()).ToDictionary(h => h.Id);
        bool Real(Guid id) => hosts.TryGetValue(id, out var h) && h is { State: HostState.Ready or HostState.Cordoned or HostState.Draining }
                                                             && h.Host.Accelerator is not null;
        // A pending format has no guest yet; a resync goes to the guest that writes the volume, when its hypervisor is real.
        var online = volume.KeyId is null ? null : grants.FirstOrDefault(g => Real(g.ClientHostId));
        var (workerId, workerName, vmId) = online is not null
            ? (online.ClientHostId, online.ClientHostName, online.VmId)
            : hosts.Values.Where(h => h is { Role: HostRole.Compute, State: HostState.Ready } && h.Host.Accelerator is not null)
                .OrderBy(h => h.Host.Vms.Count).ThenBy(h => h.Name, StringComparer.Ordinal)
                .Select(h => (h.Id, h.Name, (Guid?)null)).FirstOrDefault();
        if (workerName is null)
        {
            await context.ScheduleAsync(request, Retry); // no compute host with a hypervisor in the zone now
            return;
        }
        var after = await VolumeStreams.ExecuteAsync(session, context, new StartVolumeWork(volume.Id, workerId, workerName, vmId, Abandon: false, now),
            Scheduler, loaded: loaded);
        if (after.Work is { } started) await context.ScheduleAsync(new FindVolumeWorker(volume.Id, started.Since), Retry);
    }
}
