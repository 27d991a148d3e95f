using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Kraud.Projections.Pods;
using Kraud.Projections.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>A GFS volume on block exports became usable: it gets its file server pod if it has none (see <see cref="FileServer"/>).</summary>
public sealed record StartFileServer(Guid VolumeId);

/// <summary>A GFS volume is being deleted: its file server stops and lets go of it.</summary>
public sealed record StopFileServer(Guid VolumeId);

/// <summary>
/// The file server pods of GFS volumes: created when the volume first becomes usable, stopped when it is deleted, and, when
/// one starts serving (first boot, or back on another host after a failover), the pods that waited for it are placed.
/// </summary>
public static class FileServerHandler
{
    private static readonly Principal Controller = Principal.System("file-server");

    public static async Task Handle(StartFileServer request, IDocumentSession session, IMessageContext context, IPods pods, TimeProvider time)
    {
        var volume = (await session.LoadAsync<VolumeView>(request.VolumeId))?.Volume;
        if (volume is null || !FileServer.Serves(volume) || !volume.Usable) return;
        // Created once: the pod's id comes from the volume's, so a second request (or a race lost at commit) finds it.
        if (await session.LoadAsync<PodView>(FileServer.PodId(volume.Id)) is not null) return;
        await pods.RequestAsync(session, context, FileServer.Create(volume, Controller, time.GetUtcNow()), Controller);
    }

    public static async Task Handle(StopFileServer request, IDocumentSession session, IMessageContext context, IPods pods, TimeProvider time)
    {
        var server = await session.LoadAsync<PodView>(FileServer.PodId(request.VolumeId));
        if (server is null || server.Pod.Deleting) return;
        await pods.ExecuteAsync(session, context, new DeletePod(server.Id, Controller, time.GetUtcNow(), OnBehalfOf: request.VolumeId), Controller);
    }

    public static async Task Handle(FileServerChanged changed, IQuerySession session, IMessageContext context)
    {
        var volume = (await session.LoadAsync<VolumeView>(changed.VolumeId))?.Volume;
        if (volume is null || !FileServer.Serves(volume)) return;
        var server = FileServer.PodId(volume.Id);
        // Placing is idempotent: pods that run already have nothing to place.
        foreach (var client in volume.Attachments.Where(a => a.PodId != server))
            await context.PublishAsync(new SchedulePod(client.PodId, context.CorrelationId));
    }
}
