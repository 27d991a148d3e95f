using Kraud.Api.Fleet;
using Kraud.Api.Gql;
using Kraud.Api.Pods;
using Kraud.Api.Volumes;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Domain.Volumes;
using Marten;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Replay;

public sealed record PlatformSnapshot(DateTime AsOf, IReadOnlyList<HostDto> Hosts, IReadOnlyList<PodDto> Pods, IReadOnlyList<VolumeDto> Volumes,
    IReadOnlyList<Ingresses.IngressDto> Ingresses);

/// <summary>
/// platformAt(asOf): the platform as it was at an instant, folded from the events up to then with the same Evolve the
/// live views are projected with. Operators and platform auditors see everything; a tenant's token sees its own pods.
/// </summary>
public static class PlatformAtQuery
{
    public static void Map(Fields fields) => fields.Query("platformAt", async ctx =>
    {
        var asOf = ctx.Utc("asOf") ?? throw DomainException.Validation("asOf is required.");
        var principal = ctx.Caller().Principal;
        var (hosts, pods, volumes, ingresses) = await PlatformHistory.AtAsync(ctx.Service<IQuerySession>(), asOf, ctx.CancellationToken);
        var podStates = pods.ToDictionary(p => p.Key, p => p.Value.Pod);
        var visiblePods = pods.Values.Where(p => principal.TenantId is null || p.Pod.TenantId == principal.TenantId)
            .OrderBy(p => p.Pod.CreatedAt).ThenBy(p => p.Pod.Id).Select(p => PodDto.From(p.Pod, p.Version)).ToList();
        var visibleHosts = principal.ReadsAllTenants
            ? hosts.Values.OrderBy(h => h.Name, StringComparer.Ordinal).Select(h => HostQueries.ToDto(h, podStates, null)).ToList()
            : [];
        var visibleVolumes = volumes.Values.Where(v => !v.Volume.Deleted && (principal.TenantId is null || v.Volume.TenantId == principal.TenantId))
            .OrderBy(v => v.Volume.CreatedAt).ThenBy(v => v.Volume.Id).Select(v => VolumeDto.From(v.Volume, v.Version)).ToList();
        var visibleIngresses = ingresses.Values.Where(i => !i.Deleted && (principal.TenantId is null || i.TenantId == principal.TenantId))
            .OrderBy(i => i.CreatedAt).ThenBy(i => i.Id).Select(Ingresses.IngressDto.From).ToList();
        return new PlatformSnapshot(asOf.UtcDateTime, visibleHosts, visiblePods, visibleVolumes, visibleIngresses);
    });
}

public static class PlatformHistory
{
    /// <summary>Every host, pod, volume and ingress that existed at <paramref name="asOf"/>, each folded from its own events up to then.</summary>
    public static async Task<(Dictionary<Guid, Host> Hosts, Dictionary<Guid, (Pod Pod, int Version)> Pods,
        Dictionary<Guid, (Volume Volume, int Version)> Volumes, Dictionary<Guid, Kraud.Domain.Ingresses.Ingress> Ingresses)> AtAsync(IQuerySession session,
        DateTimeOffset asOf, CancellationToken ct)
    {
        var ingresses = new Dictionary<Guid, Kraud.Domain.Ingresses.Ingress>();
        var hosts = new Dictionary<Guid, Host>();
        var pods = new Dictionary<Guid, (Pod Pod, int Version)>();
        var volumes = new Dictionary<Guid, (Volume Volume, int Version)>();
        var events = session.Events.QueryAllRawEvents().Where(e => e.Timestamp <= asOf).OrderBy(e => e.Sequence).ToAsyncEnumerable(ct);
        await foreach (var e in events)
        {
            switch (e.Data)
            {
                case PodRequested:
                    pods[e.StreamId] = (Pod.Initial.Evolve(e.Data), 1);
                    break;
                case HostRegistered:
                    hosts[e.StreamId] = Host.Initial.Evolve(e.Data);
                    break;
                case VolumeRequested:
                    volumes[e.StreamId] = (Volume.Initial.Evolve(e.Data), 1);
                    break;
                case Kraud.Domain.Ingresses.IngressCreated:
                    ingresses[e.StreamId] = Kraud.Domain.Ingresses.Ingress.Initial.Evolve(e.Data);
                    break;
                default:
                    if (pods.TryGetValue(e.StreamId, out var pod)) pods[e.StreamId] = (pod.Pod.Evolve(e.Data), pod.Version + 1);
                    else if (hosts.TryGetValue(e.StreamId, out var host)) hosts[e.StreamId] = host.Evolve(e.Data);
                    else if (volumes.TryGetValue(e.StreamId, out var volume)) volumes[e.StreamId] = (volume.Volume.Evolve(e.Data), volume.Version + 1);
                    else if (ingresses.TryGetValue(e.StreamId, out var ingress)) ingresses[e.StreamId] = ingress.Evolve(e.Data);
                    break;
            }
        }
        return (hosts, pods, volumes, ingresses);
    }
}
