using Kraud.Api.Common;
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
    public static async Task Handle(PodRequest request, IDocumentSession session, IMessageContext context)
    {
        if (request.By.Role == Role.Auditor) throw DomainException.Forbidden("AUDITOR tokens are read-only.");
        var pod = await PodStreams.ExecuteAsync(session, context, request.Command, request.By, request.ExpectedVersion);
        // The namespace's overlay exists before the scheduler leases the pod's first address from it (after this commit).
        if (request.Command is CreatePod create)
            await Network.AddressBook.For(session).EnsureNamespaceAsync(context, create.TenantId, create.Spec.Namespace, request.By, create.At);
        if (request.Command is CreatePod)
            session.Insert(new NameClaim { Id = NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name), OwnerId = pod.Id });
        if (pod.State == PodState.Stopped)
            session.Delete<NameClaim>(NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name));
    }
}
