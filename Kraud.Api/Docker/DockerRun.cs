using System.Text.Json;
using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Docker;

/// <summary>
/// `docker run [-d] --name web -e K=V --cpus 1 -m 256m IMAGE [CMD…]`: POST /containers/create makes the pod exactly as
/// createPod does (the same PodRequest through the same handler: resolution, events, audit, errors); POST
/// /containers/{id}/start has nothing left to do for a new pod, and starts a stopped one (attached runs: DockerAttach). What Kraud cannot honour is
/// refused naming the flag, before anything is created. Without --cpus and -m a container gets 1 vCPU and 256 MiB.
/// </summary>
public static class DockerRun
{
    public const int DefaultCpu = 1, DefaultMemoryMiB = 256;

    public static void Map(WebApplication app)
    {
        DockerApiServer.Route(app, "POST", "/containers/create", CreateAsync);
        DockerApiServer.Route(app, "POST", "/containers/{id}/start", StartAsync);
    }

    private static async Task<IResult> CreateAsync(DockerCall call)
    {
        var tenant = call.Tenant;
        JsonElement body;
        try
        {
            body = (await JsonDocument.ParseAsync(call.Http.Request.Body, cancellationToken: call.Http.RequestAborted)).RootElement;
        }
        catch (JsonException e)
        {
            throw DomainException.Validation($"the request body is not JSON: {e.Message}");
        }
        if (call.Query("platform") is { Length: > 0 } platform && platform != "linux/amd64")
            throw DomainException.Validation($"--platform {platform} is not supported by Kraud: it runs linux/amd64");
        if (UnsupportedFlags.Find(body) is { } refusal) throw DomainException.Validation(refusal);

        var config = body;
        var hostConfig = body.TryGetProperty("HostConfig", out var h) ? h : default;
        var image = Text(config, "Image") ?? throw DomainException.Validation("an image is required: docker run IMAGE");
        var nanoCpus = Number(hostConfig, "NanoCpus");
        if (nanoCpus % 1_000_000_000 != 0)
            throw DomainException.Validation($"--cpus {nanoCpus / 1e9} is not supported by Kraud: a microVM has whole vCPUs (--cpus 1, 2, …)");
        var memory = Number(hostConfig, "Memory");
        var env = new Dictionary<string, string>();
        foreach (var entry in Strings(config, "Env"))
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) throw DomainException.Validation($"--env {entry}: give a value (K=V)");
            env[entry[..eq]] = entry[(eq + 1)..];
        }
        var name = call.Query("name") is { Length: > 0 } given ? given.TrimStart('/') : $"ctr-{Guid.NewGuid():N}"[..12];
        var spec = new PodSpec(name, "default", image, Strings(config, "Cmd"), env, nanoCpus == 0 ? DefaultCpu : (int)(nanoCpus / 1_000_000_000),
            memory == 0 ? DefaultMemoryMiB : (int)Math.Ceiling(memory / 1048576.0), null, false, 0, []);
        var command = new CreatePod(Guid.NewGuid(), tenant, spec, 1, call.Principal, call.Now);
        await call.InvokeAsync(new PodRequest(command, call.Principal));
        return Results.Json(new { Id = DockerContainers.IdOf(command.PodId), Warnings = Array.Empty<string>() }, DockerApiServer.Json, statusCode: 201);
    }

    /// <summary>A pod runs from the moment it is created; a stopped one starts again (StartPod).</summary>
    private static async Task<IResult> StartAsync(DockerCall call)
    {
        var pod = await DockerContainers.FindAsync(call, (string)call.Http.GetRouteValue("id")!);
        if (!pod.Pod.Halted) return Results.StatusCode(pod.State == PodState.Running ? StatusCodes.Status304NotModified : StatusCodes.Status204NoContent);
        await call.InvokeAsync(new PodRequest(new StartPod(pod.Id, call.Principal, call.Now), call.Principal));
        return Results.NoContent();
    }

    private static string? Text(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long Number(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;

    private static List<string> Strings(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Select(s => s.GetString() ?? "").ToList()
            : [];
}

/// <summary>
/// Which docker run flags a create request used that Kraud cannot honour, named as the user typed them. Every setting that
/// is not at its default and not one Kraud maps (image, command, --env, --cpus, --memory, --name, attaching stdout and stderr) is refused: a
/// container must not run with a flag silently ignored.
/// </summary>
public static class UnsupportedFlags
{
    private static readonly Dictionary<string, string> ConfigFlags = new(StringComparer.Ordinal)
    {
        ["Hostname"] = "--hostname", ["Domainname"] = "--domainname", ["User"] = "--user (-u)", ["AttachStdin"] = "--interactive (-i) / --attach stdin (-a)", ["Tty"] = "--tty (-t)",
        ["OpenStdin"] = "--interactive (-i)", ["StdinOnce"] = "--interactive (-i)", ["ExposedPorts"] = "--expose / --publish (-p): an ingress publishes a pod",
        ["Volumes"] = "--volume (-v): Kraud volumes are attached with attachVolume", ["WorkingDir"] = "--workdir (-w)", ["Entrypoint"] = "--entrypoint",
        ["Labels"] = "--label (-l)", ["Healthcheck"] = "--health-cmd", ["StopSignal"] = "--stop-signal", ["StopTimeout"] = "--stop-timeout",
        ["MacAddress"] = "--mac-address", ["NetworkDisabled"] = "--network none", ["Shell"] = "SHELL", ["OnBuild"] = "ONBUILD",
    };

    private static readonly HashSet<string> Mapped = ["Image", "Cmd", "Env", "AttachStdout", "AttachStderr", "HostConfig", "NetworkingConfig", "ArgsEscaped", "Memory", "NanoCpus", "ConsoleSize"];

    private static readonly Dictionary<string, string> HostFlags = new(StringComparer.Ordinal)
    {
        ["Binds"] = "--volume (-v): Kraud volumes are attached with attachVolume", ["ContainerIDFile"] = "--cidfile", ["LogConfig"] = "--log-driver / --log-opt",
        ["NetworkMode"] = "--network", ["PortBindings"] = "--publish (-p): an ingress publishes a pod", ["RestartPolicy"] = "--restart: Kraud replaces exited replicas itself",
        ["AutoRemove"] = "--rm", ["VolumeDriver"] = "--volume-driver", ["VolumesFrom"] = "--volumes-from", ["Mounts"] = "--mount", ["CapAdd"] = "--cap-add",
        ["CapDrop"] = "--cap-drop", ["CgroupnsMode"] = "--cgroupns", ["Dns"] = "--dns", ["DnsOptions"] = "--dns-option", ["DnsSearch"] = "--dns-search",
        ["ExtraHosts"] = "--add-host", ["GroupAdd"] = "--group-add", ["IpcMode"] = "--ipc", ["Cgroup"] = "--cgroup", ["Links"] = "--link",
        ["OomScoreAdj"] = "--oom-score-adj", ["PidMode"] = "--pid", ["Privileged"] = "--privileged", ["PublishAllPorts"] = "--publish-all (-P)",
        ["ReadonlyRootfs"] = "--read-only", ["SecurityOpt"] = "--security-opt", ["StorageOpt"] = "--storage-opt", ["Tmpfs"] = "--tmpfs", ["UTSMode"] = "--uts",
        ["UsernsMode"] = "--userns", ["ShmSize"] = "--shm-size", ["Sysctls"] = "--sysctl", ["Runtime"] = "--runtime", ["Isolation"] = "--isolation",
        ["CpuShares"] = "--cpu-shares (-c)", ["CgroupParent"] = "--cgroup-parent", ["BlkioWeight"] = "--blkio-weight", ["BlkioWeightDevice"] = "--blkio-weight-device",
        ["BlkioDeviceReadBps"] = "--device-read-bps", ["BlkioDeviceWriteBps"] = "--device-write-bps", ["BlkioDeviceReadIOps"] = "--device-read-iops",
        ["BlkioDeviceWriteIOps"] = "--device-write-iops", ["CpuPeriod"] = "--cpu-period", ["CpuQuota"] = "--cpu-quota", ["CpuRealtimePeriod"] = "--cpu-rt-period",
        ["CpuRealtimeRuntime"] = "--cpu-rt-runtime", ["CpusetCpus"] = "--cpuset-cpus", ["CpusetMems"] = "--cpuset-mems", ["Devices"] = "--device",
        ["DeviceCgroupRules"] = "--device-cgroup-rule", ["DeviceRequests"] = "--gpus", ["MemoryReservation"] = "--memory-reservation",
        ["MemorySwap"] = "--memory-swap", ["MemorySwappiness"] = "--memory-swappiness", ["OomKillDisable"] = "--oom-kill-disable", ["PidsLimit"] = "--pids-limit",
        ["Ulimits"] = "--ulimit", ["CpuCount"] = "--cpu-count", ["CpuPercent"] = "--cpu-percent", ["IOMaximumIOps"] = "--io-maxiops",
        ["IOMaximumBandwidth"] = "--io-maxbandwidth", ["Init"] = "--init", ["KernelMemory"] = "--kernel-memory", ["Annotations"] = "--annotation",
        ["MaskedPaths"] = "--security-opt systempaths=unconfined", ["ReadonlyPaths"] = "--security-opt systempaths=unconfined",
    };

    /// <summary>The refusal for the first flag Kraud cannot honour; null when there is none.</summary>
    public static string? Find(JsonElement body)
    {
        foreach (var property in body.EnumerateObject())
        {
            if (Mapped.Contains(property.Name) || IsDefault(property.Name, property.Value)) continue;
            return Refusal(ConfigFlags.GetValueOrDefault(property.Name) ?? $"the container setting {property.Name}");
        }
        if (body.TryGetProperty("HostConfig", out var host) && host.ValueKind == JsonValueKind.Object)
            foreach (var property in host.EnumerateObject())
            {
                if (Mapped.Contains(property.Name) || IsDefault(property.Name, property.Value)) continue;
                return Refusal(HostFlags.GetValueOrDefault(property.Name) ?? $"the host setting {property.Name}");
            }
        if (body.TryGetProperty("NetworkingConfig", out var networking) && !DefaultNetworking(networking))
            return Refusal("--network / --ip / --network-alias: a pod's network is its tenant's VPC");
        return null;
    }

    private static string Refusal(string flag) => $"{flag} is not supported by Kraud";

    private static bool IsDefault(string name, JsonElement value) => (name, value.ValueKind) switch
    {
        (_, JsonValueKind.Null or JsonValueKind.Undefined or JsonValueKind.False) => true,
        (_, JsonValueKind.String) when value.GetString() is "" => true,
        ("NetworkMode", JsonValueKind.String) when value.GetString() is "default" or "bridge" => true,
        ("MemorySwappiness", JsonValueKind.Number) when value.GetInt64() == -1 => true,
        (_, JsonValueKind.Number) when value.GetDouble() == 0 => true,
        (_, JsonValueKind.Array) => value.GetArrayLength() == 0,
        ("RestartPolicy", JsonValueKind.Object) => value.TryGetProperty("Name", out var policy) && policy.GetString() is "" or "no" or null,
        ("LogConfig", JsonValueKind.Object) => (!value.TryGetProperty("Type", out var type) || type.GetString() is "" or null)
                                               && (!value.TryGetProperty("Config", out var cfg) || cfg.ValueKind != JsonValueKind.Object || !cfg.EnumerateObject().Any()),
        (_, JsonValueKind.Object) => !value.EnumerateObject().Any(),
        _ => false,
    };

    /// <summary>The CLI always sends the default network's endpoint, empty; anything in it is a --network, --ip or alias.</summary>
    private static bool DefaultNetworking(JsonElement networking) =>
        networking.ValueKind != JsonValueKind.Object || !networking.TryGetProperty("EndpointsConfig", out var endpoints) || endpoints.ValueKind != JsonValueKind.Object
        || endpoints.EnumerateObject().All(e => e.Name is "default" or "bridge" && e.Value.ValueKind == JsonValueKind.Object
                                                                          && e.Value.EnumerateObject().All(p => IsDefault(p.Name, p.Value)));
}
