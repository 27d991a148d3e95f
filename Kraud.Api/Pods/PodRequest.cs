using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Api.Volumes;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>A tenant's pod command as the API received it, with the version the caller expects the pod to be at.</summary>
public sealed record PodRequest(PodCommand Command, Principal By, int? ExpectedVersion = null) : ICommandRequest
{
    object ICommandRequest.Command => Command;
}

public static class PodRequestHandler
{
    public static async Task Handle(PodRequest request, IDocumentSession session, IMessageContext context)
    {
        request.By.RequireWriter();
        await ExecuteAsync(session, context, request.Command, request.By, request.ExpectedVersion);
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
        if (pod.State == PodState.Stopped)
            session.Delete<NameClaim>(NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name));
        return pod;
    }
}

/// <summary>What every pod mutation does: its command through Wolverine, then the pod as it is now.</summary>
public static class PodMutation
{
    public static Guid PodId(IResolveFieldContext ctx) => Ids.Parse(ctx.GetArgument<string>("id"), "Pod");

    public static async Task<PodDto> SendAsync(IResolveFieldContext ctx, PodCommand command, int? expectedVersion)
    {
        await ctx.Invoke(new PodRequest(command, ctx.Caller().Principal, expectedVersion));
        var view = await ctx.Service<IQuerySession>().LoadAsync<PodView>(command.PodId, ctx.CancellationToken)
            ?? throw DomainException.NotFound("Pod", command.PodId);
        return PodDto.From(view);
    }
}
