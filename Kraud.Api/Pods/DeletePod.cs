using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Pods;

namespace Kraud.Api.Pods;

/// <summary>deletePod: its microVMs are stopped; once they are, the pod is STOPPED and its name and volumes are free again.</summary>
public static class DeletePodField
{
    public static void Map(Fields fields) => fields.Mutation("deletePod", ctx =>
        PodMutation.SendAsync(ctx, new DeletePod(PodMutation.PodId(ctx), ctx.Caller().Principal, ctx.Now()), ctx.GetArgument<int?>("expectedVersion")));
}
