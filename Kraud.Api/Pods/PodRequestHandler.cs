using Kraud.Api.Common;
using Kraud.Api.Volumes;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>A tenant's pod command as the API received it, with the version the caller expects the pod to be at.</summary>
public sealed record PodRequest(PodCommand Command, Principal By, int? ExpectedVersion = null);

public static class PodRequestHandler
{
    public static async Task Handle(PodRequest request, IDocumentSession session, IMessageContext context, PodImageResolution images, CancellationToken ct)
    {
        request.By.RequireWriter();
        var command = request.Command;
        Images.PodPullSecret? pullSecret = null;
        // A tenant's createPod resolves its image here; pods that products make (apps, clusters) name images nobody pulls.
        if (command is CreatePod { Image: null } create) (command, pullSecret) = await images.ResolveAsync(session, create, ct);
        await ExecuteAsync(session, context, command, request.By, request.ExpectedVersion);
        if (pullSecret is not null) session.Store(pullSecret);
    }

    /// <summary>
    /// A pod command with what goes with it kept in step: the name claim taken on create and given back once the pod
    /// stopped, the volumes a new pod mounts attached and its namespace's VPC overlay made, in the same transaction.
    /// </summary>
    public static async Task<Pod> ExecuteAsync(IDocumentSession session, IMessageContext context, PodCommand command, Principal by, int? expectedVersion = null)
    {
        if (command is CreatePod create) command = await VolumeAttachments.ResolveMountsAsync(session, create);
        var pod = await PodStreams.ExecuteAsync(session, context, command, by, expectedVersion);
        if (command is CreatePod created)
        {
            await VolumeAttachments.AttachNewPodAsync(session, context, pod, by, command.At);
            // The namespace's overlay exists before the scheduler leases the pod's first address from it (after this commit).
            await Network.AddressBook.For(session).EnsureNamespaceAsync(context, created.TenantId, created.Spec.Namespace, by, created.At);
            session.Insert(new NameClaim { Id = NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name), OwnerId = pod.Id });
        }
        if (pod.Gone)
        {
            session.Delete<NameClaim>(NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name));
            session.Delete<Images.PodPullSecret>(pod.Id);
        }
        return pod;
    }
}
