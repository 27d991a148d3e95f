using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Pods;

namespace Kraud.Api.Pods;

/// <summary>scalePod: more replicas are placed by the scheduler, fewer are stopped (highest replica first).</summary>
public static class ScalePodField
{
    public static void Map(Fields fields) => fields.Mutation("scalePod", ctx =>
        PodMutation.SendAsync(ctx, new ScalePod(PodMutation.PodId(ctx), ctx.GetArgument<int>("replicas"), ctx.Caller().Principal, ctx.Now()),
            ctx.GetArgument<int?>("expectedVersion")));
}
