using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Docker;

/// <summary>
/// How a pod looks as a Docker container: its id (the pod id's 32 hex digits), its name (the pod's name; name.namespace
/// outside the default namespace), its state, and where to find it by id, name or unique id prefix, as docker does.
/// Pods being deleted are gone for docker already (docker rm removes at once).
/// </summary>
public static class DockerContainers
{
    public static string IdOf(Guid podId) => podId.ToString("N");

    public static string NameOf(PodView pod) => pod.Namespace == "default" ? pod.Name : $"{pod.Name}.{pod.Namespace}";

    public static bool Listed(PodView pod) => !pod.Pod.Deleting;

    public static async Task<PodView> FindAsync(DockerCall call, string idOrName)
    {
        var tenant = call.Tenant;
        var session = call.Service<IQuerySession>();
        var key = idOrName.TrimStart('/');
        if (Guid.TryParseExact(key, "N", out var id) && await session.LoadAsync<PodView>(id, call.Http.RequestAborted) is { } byId
                                                    && byId.TenantId == tenant && Listed(byId))
            return byId;
        var dot = key.IndexOf('.', StringComparison.Ordinal);
        var (name, ns) = dot > 0 ? (key[..dot], key[(dot + 1)..]) : (key, "default");
        var byName = await session.Query<PodView>().Where(p => p.TenantId == tenant && p.Name == name && p.Namespace == ns).ToListAsync(call.Http.RequestAborted);
        if (byName.FirstOrDefault(Listed) is { } named) return named;
        if (key.Length > 0 && key.All(char.IsAsciiHexDigitLower))
        {
            var prefixed = (await session.Query<PodView>().Where(p => p.TenantId == tenant).ToListAsync(call.Http.RequestAborted))
                .Where(p => Listed(p) && IdOf(p.Id).StartsWith(key, StringComparison.Ordinal)).ToList();
            if (prefixed.Count == 1) return prefixed[0];
            if (prefixed.Count > 1) throw DomainException.Validation($"multiple IDs found with provided prefix: {key}");
        }
        throw new DomainException(ErrorCode.NotFound, $"No such container: {idOrName}");
    }

    /// <summary>The command docker shows: the image's Entrypoint, then the pod's command or else the image's Cmd.</summary>
    public static IReadOnlyList<string> Argv(Pod pod) =>
        [.. pod.Image?.Entrypoint ?? [], .. pod.Spec.Command.Count > 0 ? pod.Spec.Command : pod.Image?.Cmd ?? []];

    /// <summary>Docker's state of the container (created, running, exited, removing) and its Status text.</summary>
    public sealed record ContainerState(string State, string Status, int ExitCode, string Error, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt)
    {
        public bool Running => State == "running";
    }

    public static ContainerState StateOf(PodView view, DateTimeOffset now)
    {
        var pod = view.Pod;
        var live = pod.Live.ToList();
        var started = live.Where(i => i.StartedAt is not null).Min(i => i.StartedAt);
        if (pod.Deleting) return new ContainerState("removing", "Removal In Progress", 0, "", started, null);
        switch (pod.State)
        {
            case PodState.Running:
                return new ContainerState("running", $"Up {Human(now - started!.Value)}", 0, "", started, null);
            case PodState.Failed:
                var failed = live.First(i => i.Phase == VmPhase.Failed);
                var code = failed.ExitCode ?? 255;
                var ago = failed.FailedAt is { } at ? $" {Human(now - at)} ago" : "";
                return new ContainerState("exited", $"Exited ({code}){ago}", code, failed.ExitCode is null ? failed.Reason ?? "" : "", failed.StartedAt, failed.FailedAt);
            case PodState.Stopping or PodState.Stopped:
                return new ContainerState("exited", "Exited (0)", 0, "", null, null);
            default:
                return new ContainerState("created", "Created", 0, pod.Reason ?? "", null, null);
        }
    }

    /// <summary>As docker says durations: "3 seconds", "About a minute", "2 hours".</summary>
    public static string Human(TimeSpan d) => d.TotalSeconds switch
    {
        < 1 => "Less than a second",
        < 2 => "1 second",
        < 60 => $"{(int)d.TotalSeconds} seconds",
        < 120 => "About a minute",
        < 3600 => $"{(int)d.TotalMinutes} minutes",
        < 7200 => "About an hour",
        < 48 * 3600 => $"{(int)d.TotalHours} hours",
        _ => $"{(int)d.TotalDays} days",
    };

    public static long Unix(DateTimeOffset at) => at.ToUnixTimeSeconds();

    public static string Rfc3339(DateTimeOffset? at) => at?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture) ?? "0001-01-01T00:00:00Z";
}
