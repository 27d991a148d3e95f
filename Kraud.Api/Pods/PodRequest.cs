using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

public static class PodRequestHandler
{
    /// <summary>The pod as decided is the answer (callers invoke with InvokeAsync&lt;DecidedPod&gt;, so it is not sent on as a message).</summary>
    public static async Task<DecidedPod> Handle(PodRequest request, IDocumentSession session, IMessageContext context, IPods pods, IPodImages images,
        CancellationToken ct)
    {
        request.By.RequireWriter();
        var command = request.Command;
        // A tenant's createPod resolves its image here; pods that products make (apps, clusters) name images nobody pulls.
        if (command is CreatePod { Image: null } create) command = await images.ResolveAsync(session, create, ct);
        // What the command reads (its pod's stream, the namespace's VPC, claims) is read in the transaction that writes: each
        // read of a session without one was a transaction of its own, several commits per pod. Begun after the image's
        // resolution, which may wait on a registry.
        await session.BeginTransactionAsync(ct);
        if (command is CreatePod resolved)
        {
            // Its reads in one round trip: the pod's stream, the namespace's VPC, the credential the image was resolved with.
            await pods.ReadAheadForCreateAsync(session, resolved);
            // The credential confirmed here rather than read in a transaction of its own before.
            command = await images.ConfirmAsync(session, resolved, ct);
        }
        return await pods.RequestAsync(session, context, command, request.By, request.ExpectedVersion);
    }
}

/// <summary>
/// What every pod mutation does: its command through Wolverine, answered with the pod as the command decided it (the same
/// state and version the inline view commits), not read back after the write.
/// </summary>
public static class PodMutation
{
    public static Guid PodId(IResolveFieldContext ctx) => Ids.Parse(ctx.GetArgument<string>("id"), "Pod");

    public static async Task<PodDto> SendAsync(IResolveFieldContext ctx, PodCommand command, int? expectedVersion)
    {
        var decided = await ctx.Invoke<DecidedPod>(new PodRequest(command, ctx.Caller().Principal, expectedVersion));
        return PodDto.From(decided.Pod, decided.Version);
    }
}
