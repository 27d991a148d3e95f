using System.Text.Json;
using Kraud.Domain.Common;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Docker;

/// <summary>`docker ps [-a]` and `docker inspect`: the tenant's pods as containers.</summary>
public static class DockerPs
{
    public static void Map(WebApplication app)
    {
        DockerApiServer.Route(app, "GET", "/containers/json", ListAsync);
        DockerApiServer.Route(app, "GET", "/containers/{id}/json", InspectAsync);
    }

    private static async Task<IResult> ListAsync(DockerCall call)
    {
        var tenant = call.Tenant;
        var filters = Filters(call.Query("filters"));
        if (filters.Keys.FirstOrDefault(k => k is not ("name" or "id" or "status")) is { } unsupported)
            throw DomainException.Validation($"docker ps --filter {unsupported} is not supported by Kraud (name, id and status are)");
        var now = call.Now;
        var pods = await call.Service<IQuerySession>().Query<PodView>().Where(p => p.TenantId == tenant).OrderByDescending(p => p.CreatedTicks)
            .ToListAsync(call.Http.RequestAborted);
        var all = call.Flag("all");
        var containers = pods.Where(DockerContainers.Listed)
            .Select(p => (Pod: p, State: DockerContainers.StateOf(p, now)))
            .Where(c => all || c.State.Running)
            .Where(c => Matches(filters, "name", v => DockerContainers.NameOf(c.Pod).Contains(v.TrimStart('/'), StringComparison.Ordinal))
                        && Matches(filters, "id", v => DockerContainers.IdOf(c.Pod.Id).StartsWith(v, StringComparison.Ordinal))
                        && Matches(filters, "status", v => v == c.State.State))
            .Take(int.TryParse(call.Query("limit"), CultureInfo.InvariantCulture, out var limit) && limit > 0 ? limit : int.MaxValue)
            .Select(c => new
            {
                Id = DockerContainers.IdOf(c.Pod.Id),
                Names = new[] { "/" + DockerContainers.NameOf(c.Pod) },
                c.Pod.Pod.Spec.Image,
                ImageID = c.Pod.Pod.Image?.Digest ?? "",
                Command = string.Join(' ', DockerContainers.Argv(c.Pod.Pod)),
                Created = DockerContainers.Unix(c.Pod.CreatedAt),
                Ports = Array.Empty<object>(),
                Labels = Labels(c.Pod),
                c.State.State,
                c.State.Status,
                HostConfig = new { NetworkMode = "default" },
                NetworkSettings = new { Networks = new Dictionary<string, object>(StringComparer.Ordinal) },
                Mounts = Array.Empty<object>(),
            })
            .ToList();
        return Results.Json(containers, DockerApiServer.Json);
    }

    private static async Task<IResult> InspectAsync(DockerCall call)
    {
        var view = await DockerContainers.FindAsync(call, (string)call.Http.GetRouteValue("id")!);
        var pod = view.Pod;
        var state = DockerContainers.StateOf(view, call.Now);
        var argv = DockerContainers.Argv(pod);
        var live = pod.Live.FirstOrDefault();
        return Results.Json(new
        {
            Id = DockerContainers.IdOf(view.Id),
            Created = DockerContainers.Rfc3339(view.CreatedAt),
            Path = argv.FirstOrDefault() ?? "",
            Args = argv.Skip(1).ToArray(),
            State = new
            {
                Status = state.State, state.Running, Paused = false, Restarting = false, OOMKilled = false, Dead = false, Pid = 0, state.ExitCode,
                state.Error, StartedAt = DockerContainers.Rfc3339(state.StartedAt), FinishedAt = DockerContainers.Rfc3339(state.FinishedAt),
            },
            Image = pod.Image?.Digest ?? "",
            Name = "/" + DockerContainers.NameOf(view),
            RestartCount = Math.Max(0, pod.Generations.Values.DefaultIfEmpty(0).Max() - 1),
            Driver = "kraud-microvm",
            Platform = "linux",
            HostConfig = new { NanoCpus = pod.Spec.Cpu * 1_000_000_000L, Memory = pod.Spec.MemoryMiB * 1048576L, NetworkMode = "default" },
            Config = new
            {
                Hostname = DockerContainers.NameOf(view),
                pod.Spec.Image,
                Env = pod.Spec.Env.Select(e => $"{e.Key}={e.Value}").ToArray(),
                Cmd = pod.Spec.Command.Count > 0 ? pod.Spec.Command : pod.Image?.Cmd ?? [],
                Entrypoint = pod.Image?.Entrypoint ?? [],
                Tty = false, OpenStdin = false, AttachStdout = false, AttachStderr = false,
                Labels = Labels(view),
            },
            NetworkSettings = new { IPAddress = live?.Ip4 ?? "", GlobalIPv6Address = live?.Ip6 ?? "", Networks = new Dictionary<string, object>(StringComparer.Ordinal) },
            Mounts = pod.Spec.Mounts.Select(m => new { Type = "volume", Name = m.VolumeId.ToString(), Destination = m.MountPath, RW = !m.ReadOnly }).ToArray(),
        }, DockerApiServer.Json);
    }

    private static Dictionary<string, string> Labels(PodView pod) => new(StringComparer.Ordinal)
    {
        ["cloud.kraud.pod"] = pod.Id.ToString(), ["cloud.kraud.namespace"] = pod.Namespace, ["cloud.kraud.replicas"] = pod.Pod.Replicas.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>docker's filters: {"name": {"web": true}} (or ["web"] from older clients).</summary>
    private static Dictionary<string, List<string>> Filters(string json)
    {
        var filters = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(json)) return filters;
        using var document = JsonDocument.Parse(json);
        foreach (var filter in document.RootElement.EnumerateObject())
            filters[filter.Name] = filter.Value.ValueKind == JsonValueKind.Array
                ? filter.Value.EnumerateArray().Select(v => v.GetString() ?? "").ToList()
                : filter.Value.EnumerateObject().Select(v => v.Name).ToList();
        return filters;
    }

    private static bool Matches(Dictionary<string, List<string>> filters, string key, Func<string, bool> test) =>
        !filters.TryGetValue(key, out var values) || values.Any(test);
}
