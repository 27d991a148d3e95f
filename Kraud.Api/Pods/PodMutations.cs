using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Pods;

/// <summary>createPod, scalePod, restartPod, deletePod: each maps its input to a command and answers with the pod as it is now.</summary>
public static class PodMutations
{
    public static void Map(Fields fields)
    {
        fields.Mutation("createPod", async ctx =>
        {
            var caller = ctx.Caller();
            var input = ctx.Input("input");
            var spec = new PodSpec(
                input.Required<string>("name"), input.Optional<string>("namespace") ?? "default", input.Required<string>("image"),
                input.Strings("command"), input.StringMap("env"), input.Int("cpu") ?? 0, input.Int("memoryMiB") ?? 0, input.Optional<string>("zone"),
                input.Bool("confidential") ?? false, input.Int("ephemeralGiB") ?? 0,
                // The class is filled in from the volume itself when the command is handled.
                input.Objects("volumes").Select(v => new VolumeMount(Ids.Parse(v.Required<string>("volumeId"), "Volume"), v.Required<string>("mountPath"),
                    v.Bool("readOnly") ?? false, default)).ToList());
            var command = new CreatePod(Guid.NewGuid(), caller.Principal.RequireTenant(), spec, input.Int("replicas") ?? 1, caller.Principal, ctx.Now());
            return await Send(ctx, command, null);
        });
        fields.Mutation("scalePod", ctx =>
            Send(ctx, new ScalePod(PodId(ctx), ctx.GetArgument<int>("replicas"), ctx.Caller().Principal, ctx.Now()), ctx.GetArgument<int?>("expectedVersion")));
        fields.Mutation("restartPod", ctx =>
            Send(ctx, new RestartPod(PodId(ctx), ctx.Caller().Principal, ctx.Now()), null));
        fields.Mutation("deletePod", ctx =>
            Send(ctx, new DeletePod(PodId(ctx), ctx.Caller().Principal, ctx.Now()), ctx.GetArgument<int?>("expectedVersion")));
    }

    private static Guid PodId(IResolveFieldContext ctx) => Ids.Parse(ctx.GetArgument<string>("id"), "Pod");

    private static async Task<PodDto> Send(IResolveFieldContext ctx, PodCommand command, int? expectedVersion)
    {
        await ctx.Invoke(new PodRequest(command, ctx.Caller().Principal, expectedVersion));
        var view = await ctx.Service<IQuerySession>().LoadAsync<PodView>(command.PodId, ctx.CancellationToken)
            ?? throw DomainException.NotFound("Pod", command.PodId);
        return PodDto.From(view);
    }
}
