using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Pods;

namespace Kraud.Api.Pods;

/// <summary>
/// createPod: the input becomes a <see cref="CreatePod"/> for the caller's tenant; its handler (<see cref="PodRequestHandler"/>)
/// claims the name, attaches the volumes, makes the namespace's VPC overlay and asks the scheduler to place it.
/// </summary>
public static class CreatePodField
{
    public static void Map(Fields fields) => fields.Mutation("createPod", async ctx =>
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
        var command = new CreatePod(ctx.NewId(), caller.Principal.RequireTenant(), spec, input.Int("replicas") ?? 1, caller.Principal, ctx.Now());
        return await PodMutation.SendAsync(ctx, command, null);
    });
}
