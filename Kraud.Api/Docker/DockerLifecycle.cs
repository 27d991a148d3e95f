using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;

namespace Kraud.Api.Docker;

/// <summary>
/// `docker stop` (StopPod: the microVMs stop, the pod stays), `docker restart` (RestartPod: fresh microVMs; a stopped pod
/// starts) and `docker rm [-f]` (DeletePod; without -f only a container that is not running, as docker has it).
/// </summary>
public static class DockerLifecycle
{
    public static void Map(WebApplication app)
    {
        DockerApiServer.Route(app, "POST", "/containers/{id}/stop", StopAsync);
        DockerApiServer.Route(app, "POST", "/containers/{id}/restart", RestartAsync);
        DockerApiServer.Route(app, "DELETE", "/containers/{id}", RemoveAsync);
    }

    private static async Task<IResult> StopAsync(DockerCall call)
    {
        var pod = await DockerContainers.FindAsync(call, Id(call));
        if (pod.Pod.Halted) return Results.StatusCode(StatusCodes.Status304NotModified);
        await call.InvokeAsync(new PodRequest(new StopPod(pod.Id, call.Principal, call.Now), call.Principal));
        return Results.NoContent();
    }

    private static async Task<IResult> RestartAsync(DockerCall call)
    {
        var pod = await DockerContainers.FindAsync(call, Id(call));
        PodCommand command = pod.Pod.Halted ? new StartPod(pod.Id, call.Principal, call.Now) : new RestartPod(pod.Id, call.Principal, call.Now);
        await call.InvokeAsync(new PodRequest(command, call.Principal));
        return Results.NoContent();
    }

    private static async Task<IResult> RemoveAsync(DockerCall call)
    {
        var pod = await DockerContainers.FindAsync(call, Id(call));
        // As docker: only a container that does not run goes without -f. A pod that is not stopped and has not exited is
        // running or about to (booting, or replacing an exited replica).
        if (!call.Flag("force") && !pod.Pod.Halted && DockerContainers.StateOf(pod, call.Now).State != "exited")
            throw DomainException.Conflict(
                $"You cannot remove a running container {DockerContainers.IdOf(pod.Id)}. Stop the container before attempting removal or force remove");
        if (call.Flag("v")) throw DomainException.Validation("--volumes (-v) is not supported by Kraud: volumes are deleted with deleteVolume");
        await call.InvokeAsync(new PodRequest(new DeletePod(pod.Id, call.Principal, call.Now), call.Principal));
        return Results.NoContent();
    }

    private static string Id(DockerCall call) => (string)call.Http.GetRouteValue("id")!;
}
