using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Pods;

namespace Kraud.Api.Pods;

/// <summary>restartPod: every microVM of the pod is stopped and booted again (a new generation, a fresh ephemeral disk).</summary>
public static class RestartPodField
{
    public static void Map(Fields fields) => fields.Mutation("restartPod", ctx =>
        PodMutation.SendAsync(ctx, new RestartPod(PodMutation.PodId(ctx), ctx.Caller().Principal, ctx.Now()), null));
}
