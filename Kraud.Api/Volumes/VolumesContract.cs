using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Kraud.Domain.Scheduling;
using Kraud.Domain.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>What other slices may ask of volumes (see <see cref="IVolumes"/>), served by this slice's own code.</summary>
public sealed class VolumesContract : IVolumes
{
    public Task<Volume> ExecuteAsync(IDocumentSession session, IMessageContext context, VolumeCommand command, Principal by, int? expectedVersion = null,
        Loaded<Volume>? loaded = null) =>
        VolumeStreams.ExecuteAsync(session, context, command, by, expectedVersion, loaded: loaded);

    public Task CreateAsync(IDocumentSession session, IMessageContext context, CreateVolume create, Principal by) =>
        VolumeRequestHandler.CreateAsync(session, context, create, by);

    public Task<CreatePod> ResolveMountsAsync(IQuerySession session, CreatePod create) => VolumeAttachments.ResolveMountsAsync(session, create);

    public Task AttachNewPodAsync(IDocumentSession session, IMessageContext context, Pod pod, Principal by, DateTimeOffset at) =>
        VolumeAttachments.AttachNewPodAsync(session, context, pod, by, at);

    public Task ReleaseAsync(IDocumentSession session, IMessageContext context, Pod pod, Principal by, DateTimeOffset at) =>
        VolumeAttachments.ReleaseAsync(session, context, pod, by, at);

    public Task<VolumeAffinity.Verdict> AffinityAsync(IQuerySession session, Pod pod) => VolumeMounts.AffinityAsync(session, pod);

    public void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods) => VolumeMounts.ReadAheadForBoots(ahead, pods);

    public Task<IReadOnlyList<VolumeAttachmentSpec>> ForBootAsync(IDocumentSession session, IMessageContext context, Pod pod, PodInstance vm) =>
        VolumeMounts.ForBootAsync(session, context, pod, vm);

    public Task RevokeAccessAsync(IDocumentSession session, IMessageContext context, Pod pod, PodInstance vm) =>
        VolumeMounts.ReleaseAsync(session, context, pod, vm);
}
