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

/// <summary>A tenant's pod command as the API received it, with the version the caller expects the pod to be at.</summary>
public sealed record PodRequest(PodCommand Command, Principal By, int? ExpectedVersion = null) : ICommandRequest
{
    object ICommandRequest.Command => Command;
}

public static class PodRequestHandler
{
    public static async Task Handle(PodRequest request, IDocumentSession session, IMessageContext context, IPods pods)
    {
        request.By.RequireWriter();
        await pods.RequestAsync(session, context, request.Command, request.By, request.ExpectedVersion);
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
