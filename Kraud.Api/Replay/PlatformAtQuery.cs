using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;

namespace Kraud.Api.Replay;

public sealed record PlatformSnapshot(DateTime AsOf, IReadOnlyList<HostDto> Hosts, IReadOnlyList<PodDto> Pods, IReadOnlyList<VolumeDto> Volumes,
    IReadOnlyList<IngressDto> Ingresses);

/// <summary>
/// platformAt(asOf): the platform as it was at an instant: the nearest checkpoint of the platform projection before it
/// and the events after that up to the instant, folded with the same Evolve the live views are projected with (see
/// PlatformCheckpoints). Pods whose deletion had finished and deleted volumes and ingresses are not part of it.
/// Operators and platform auditors see everything; a tenant's token sees its own resources.
/// </summary>
public static class PlatformAtQuery
{
    public static void Map(Fields fields) => fields.Query("platformAt", async ctx =>
    {
        var asOf = ctx.Utc("asOf") ?? throw DomainException.Validation("asOf is required.");
        var principal = ctx.Caller().Principal;
        await ctx.Service<ArchiveBoundary>().RequireAtAsync(asOf, $"platformAt({asOf.UtcDateTime:O})", ctx.CancellationToken);
        var platform = await ctx.Service<PlatformCheckpointer>().Checkpoints.AtAsync(asOf, ctx.CancellationToken);
        var podStates = platform.Pods.ToDictionary(p => p.Key, p => p.Value.State);
        var visiblePods = platform.Pods.Values.Where(p => principal.TenantId is null || p.State.TenantId == principal.TenantId)
            .OrderBy(p => p.State.CreatedAt).ThenBy(p => p.State.Id).Select(p => PodDto.From(p.State, p.Version)).ToList();
        var visibleHosts = principal.ReadsAllTenants
            ? platform.Hosts.Values.OrderBy(h => h.Name, StringComparer.Ordinal).Select(h => HostDto.From(h, podStates, null)).ToList()
            : [];
        var visibleVolumes = platform.Volumes.Values.Where(v => principal.TenantId is null || v.State.TenantId == principal.TenantId)
            .OrderBy(v => v.State.CreatedAt).ThenBy(v => v.State.Id).Select(v => VolumeDto.From(v.State, v.Version)).ToList();
        var visibleIngresses = platform.Ingresses.Values.Where(i => principal.TenantId is null || i.State.TenantId == principal.TenantId)
            .OrderBy(i => i.State.CreatedAt).ThenBy(i => i.State.Id).Select(i => IngressDto.From(i.State)).ToList();
        return new PlatformSnapshot(asOf.UtcDateTime, visibleHosts, visiblePods, visibleVolumes, visibleIngresses);
    });
}
