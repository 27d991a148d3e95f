using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Docker;

/// <summary>`docker version` and `docker info`, and the ping every docker command starts with (answered without a token).</summary>
public static class DockerSystem
{
    public const string ServerVersion = "kraud-1";

    public static void Map(WebApplication app)
    {
        foreach (var path in new[] { "/_ping", "/v{version}/_ping" })
            app.MapMethods(path, ["GET", "HEAD"], (HttpContext http) =>
            {
                http.Response.Headers["Api-Version"] = DockerApiServer.ApiVersion;
                http.Response.Headers["Docker-Experimental"] = "false";
                http.Response.Headers["Ostype"] = "linux";
                http.Response.Headers.CacheControl = "no-cache, no-store, must-revalidate";
                return Results.Text("OK");
            });
        DockerApiServer.Route(app, "GET", "/version", call => Task.FromResult(Results.Json(Version(), DockerApiServer.Json)));
        DockerApiServer.Route(app, "GET", "/info", InfoAsync);
    }

    private static object Version() => new
    {
        Platform = new { Name = "Kraud" },
        Components = new[] { new { Name = "Kraud", Version = ServerVersion, Details = new { ApiVersion = DockerApiServer.ApiVersion } } },
        Version = ServerVersion,
        ApiVersion = DockerApiServer.ApiVersion,
        MinAPIVersion = DockerApiServer.MinApiVersion,
        GitCommit = "",
        GoVersion = "",
        Os = "linux",
        Arch = "amd64",
        KernelVersion = "",
        BuildTime = "",
    };

    private static async Task<IResult> InfoAsync(DockerCall call)
    {
        var tenant = call.Tenant;
        var pods = (await call.Service<IQuerySession>().Query<PodView>().Where(p => p.TenantId == tenant).ToListAsync(call.Http.RequestAborted))
            .Where(DockerContainers.Listed).ToList();
        var now = call.Now;
        var states = pods.Select(p => DockerContainers.StateOf(p, now).State).ToList();
        return Results.Json(new
        {
            ID = "kraud",
            Containers = pods.Count,
            ContainersRunning = states.Count(s => s == "running"),
            ContainersPaused = 0,
            ContainersStopped = states.Count(s => s == "exited"),
            Images = pods.Select(p => p.Pod.Image?.Digest).Where(d => d is not null).Distinct(StringComparer.Ordinal).Count(),
            Driver = "kraud-microvm",
            Name = "kraud",
            ServerVersion,
            OperatingSystem = "Kraud (pods in microVMs)",
            OSType = "linux",
            Architecture = "x86_64",
            NCPU = pods.Where(p => p.State == PodState.Running).Sum(p => p.Pod.Spec.Cpu * p.Pod.Replicas),
            MemTotal = pods.Where(p => p.State == PodState.Running).Sum(p => p.Pod.Spec.MemoryMiB * 1048576L * p.Pod.Replicas),
            LoggingDriver = "kraud",
            CgroupDriver = "none",
            DockerRootDir = "",
            Labels = new[] { $"cloud.kraud.tenant={tenant}" },
            Swarm = new { LocalNodeState = "inactive", ControlAvailable = false },
            SecurityOptions = new[] { "name=microvm" },
            Warnings = Array.Empty<string>(),
        }, DockerApiServer.Json);
    }
}
