using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Kraud.Projections.Pods;
using Marten;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Fleet;

public sealed record ZoneDto(string Id, string Datacenter, IReadOnlyList<string> Racks, IReadOnlyList<HostDto> Hosts);

/// <summary>hosts and zones are the platform's inventory: operators only.</summary>
public static class HostQueries
{
    public static void Map(Fields fields)
    {
        fields.Query("hosts", async ctx =>
        {
            RequireOperator(ctx);
            var zone = ctx.GetArgument<string?>("zone");
            return await LoadAllAsync(ctx, zone);
        });
        fields.Query("zones", async ctx =>
        {
            RequireOperator(ctx);
            var hosts = (await LoadAllAsync(ctx, null)).ToLookup(h => h.Zone);
            var zones = await ctx.Service<IQuerySession>().Query<ZoneView>().OrderBy(z => z.Name).ToListAsync(ctx.CancellationToken);
            return zones.Select(z => new ZoneDto(z.Name, z.Datacenter, z.Zone.Racks.ToList(), hosts[z.Name].ToList())).ToList();
        });
    }

    public static async Task<HostDto> LoadAsync(IResolveFieldContext ctx, Guid hostId)
    {
        var view = await ctx.Service<IQuerySession>().LoadAsync<HostView>(hostId, ctx.CancellationToken) ?? throw DomainException.NotFound("Host", hostId);
        return (await ToDtos(ctx, [view]))[0];
    }

    private static async Task<IReadOnlyList<HostDto>> LoadAllAsync(IResolveFieldContext ctx, string? zone)
    {
        var query = ctx.Service<IQuerySession>().Query<HostView>().AsQueryable();
        if (zone is not null) query = query.Where(h => h.Zone == zone);
        var views = await query.OrderBy(h => h.Name).ToListAsync(ctx.CancellationToken);
        return await ToDtos(ctx, views);
    }

    /// <summary>The microVMs of each host come from the pods that own them, so their state is the one the pod shows.</summary>
    private static async Task<IReadOnlyList<HostDto>> ToDtos(IResolveFieldContext ctx, IReadOnlyList<HostView> views)
    {
        var session = ctx.Service<IQuerySession>();
        var hostIds = views.Select(v => v.Id).ToArray();
        var liveness = hostIds.Length == 0 ? [] : (await session.LoadManyAsync<HostLiveness>(ctx.CancellationToken, hostIds)).ToDictionary(l => l.Id);
        var podIds = views.SelectMany(v => v.Host.Vms.Values.Select(vm => vm.PodId)).Distinct().ToArray();
        var pods = podIds.Length == 0
            ? new Dictionary<Guid, Pod>()
            : (await session.LoadManyAsync<PodView>(ctx.CancellationToken, podIds)).ToDictionary(p => p.Id, p => p.Pod);
        return views.Select(v => HostDto.From(v.Host, pods, liveness.GetValueOrDefault(v.Id)?.LastHeartbeat)).ToList();
    }

    private static void RequireOperator(IResolveFieldContext ctx)
    {
        if (ctx.Caller().Principal.Role != Role.Operator) throw DomainException.Forbidden("Hosts and zones are visible to operators only.");
    }
}
