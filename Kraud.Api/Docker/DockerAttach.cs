using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;
using Microsoft.AspNetCore.Http.Features;

namespace Kraud.Api.Docker;

/// <summary>
/// `docker run` without -d, and `docker wait`: the CLI attaches to the container (POST /containers/{id}/attach, a
/// connection upgraded to a raw stream), asks to be told of its next exit (POST /containers/{id}/wait), then starts it.
/// The attached stream carries the workload's stdout and stderr, multiplexed as `docker logs` has them, until the
/// workload exits, the container is stopped or removed; the wait answers with the exit code, which `docker run` exits
/// with. Kraud then replaces the exited replica after its back-off, as Docker's --restart always would: a pod is a
/// service, not a one-shot job (docker rm removes it).
/// </summary>
public static class DockerAttach
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// How long lines are still taken after the exit: a host ships a workload's last lines and reports its exit on two
    /// paths, so the exit can be recorded before the lines that came before it.
    /// </summary>
    private static readonly TimeSpan Drain = TimeSpan.FromSeconds(2);

    public static void Map(WebApplication app)
    {
        DockerApiServer.Route(app, "POST", "/containers/{id}/attach", AttachAsync);
        DockerApiServer.Route(app, "POST", "/containers/{id}/wait", WaitAsync);
    }

    private static async Task<IResult> AttachAsync(DockerCall call)
    {
        var pod = await DockerContainers.FindAsync(call, Id(call));
        if (call.Flag("stdin"))
            throw DomainException.Validation("--interactive (-i) and --attach stdin are not supported by Kraud: a workload has no stdin");
        if (!call.Flag("stream") && !call.Flag("logs")) throw DomainException.Validation("Bad parameters: attach needs stream or logs");
        var (stdout, stderr) = (call.Flag("stdout"), call.Flag("stderr"));
        var logs = call.Service<IWorkloadLogs>();
        var session = call.Service<IQuerySession>();
        var http = call.Http;
        var ct = http.RequestAborted;
        // With logs=1, or for a container that has not run yet (`docker run` attaches right after the create), the stream
        // starts with what the container wrote so far; else with what it writes from now on.
        var position = call.Flag("logs") || DockerContainers.StateOf(pod, call.Now).State == "created" ? 0 : await logs.LastIdAsync(pod.TenantId, pod.Id, ct);

        // The CLI asks to upgrade the connection (Upgrade: tcp) and reads the raw stream after the 101, as from the daemon.
        http.Response.Headers.ContentType = "application/vnd.docker.raw-stream";
        Stream body;
        if (http.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } upgrade)
        {
            http.Response.Headers.Upgrade = "tcp";
            body = await upgrade.UpgradeAsync();
        }
        else
        {
            http.Response.StatusCode = StatusCodes.Status200OK;
            await http.Response.StartAsync(ct);
            body = http.Response.Body;
        }
        try
        {
            async Task CopyAsync()
            {
                foreach (var line in await logs.ReadAsync(pod.TenantId, pod.Id, null, null, null, position, ct))
                {
                    if (line.Stream == "stderr" ? stderr : stdout) await DockerLogs.WriteFrameAsync(body, line, false, ct);
                    position = line.Id;
                }
                await body.FlushAsync(ct);
            }

            if (call.Flag("stream"))
                while (await ExitAfterAsync(session, pod.Id, pod.Version, ct) is null)
                {
                    await CopyAsync();
                    await Task.Delay(Poll, ct);
                }
            var drained = DateTimeOffset.UtcNow + Drain;
            do
            {
                await CopyAsync();
                if (!call.Flag("stream")) break;
                await Task.Delay(Poll, ct);
            } while (DateTimeOffset.UtcNow < drained);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (IOException) when (ct.IsCancellationRequested) { }
        finally
        {
            // The end of the raw stream is the end of the container's output for the CLI.
            await body.DisposeAsync();
        }
        return Results.Empty;
    }

    /// <summary>
    /// Answers when the container's workload exits, it is stopped or removed, with the exit code. condition=next-exit (what
    /// `docker run` asks) and removed wait for a change from now; not-running (`docker wait`) answers at once for a
    /// container that does not run. The headers go at once, as the daemon's do: `docker run` waits for them before it starts
    /// the container.
    /// </summary>
    private static async Task<IResult> WaitAsync(DockerCall call)
    {
        var pod = await DockerContainers.FindAsync(call, Id(call));
        var condition = call.Query("condition") is { Length: > 0 } c ? c : "not-running";
        if (condition is not ("not-running" or "next-exit" or "removed"))
            throw DomainException.Validation($"invalid condition: \"{condition}\" (not-running, next-exit or removed)");
        var session = call.Service<IQuerySession>();
        var http = call.Http;
        var ct = http.RequestAborted;
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = "application/json";
        await http.Response.StartAsync(ct);
        await http.Response.Body.FlushAsync(ct);
        try
        {
            var state = DockerContainers.StateOf(pod, call.Now);
            int? code = condition == "not-running" && state.State == "exited" ? state.ExitCode : null;
            while (code is null)
            {
                await Task.Delay(Poll, ct);
                code = condition == "removed"
                    ? await session.LoadAsync<PodView>(pod.Id, ct) is { Pod.Gone: false } ? null : 0
                    : await ExitAfterAsync(session, pod.Id, pod.Version, ct);
            }
            await http.Response.WriteAsync(System.Text.Json.JsonSerializer.Serialize(new { StatusCode = code.Value, Error = (object?)null }, DockerApiServer.Json), ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        return Results.Empty;
    }

    /// <summary>
    /// The exit code that ended the container's run after stream version <paramref name="version"/>: a workload's exit
    /// (PodReplicaExited), or 0 for a stop or a removal; null while it runs.
    /// </summary>
    public static async Task<int?> ExitAfterAsync(IQuerySession session, Guid podId, long version, CancellationToken ct)
    {
        if (await session.LoadAsync<PodView>(podId, ct) is not { } view) return 0;
        if (view.Version <= version) return null;
        foreach (var e in (await session.Events.FetchStreamAsync(podId, token: ct)).Where(e => e.Version > version))
            switch (e.Data)
            {
                case PodReplicaExited exited: return exited.ExitCode;
                case PodStopRequested or PodDeletionRequested or PodStopped: return 0;
            }
        return null;
    }

    private static string Id(DockerCall call) => (string)call.Http.GetRouteValue("id")!;
}
