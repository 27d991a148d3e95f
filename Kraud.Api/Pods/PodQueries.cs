using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Pods;
using Kraud.Projections.Pods;
using Kraud.Projections.Replay;
using Marten;

namespace Kraud.Api.Pods;

public sealed record PodConnection(IReadOnlyList<PodDto> Nodes, PageInfo PageInfo, int TotalCount);

/// <summary>pods and pod: a tenant sees its own pods only; an operator sees all; an auditor sees none.</summary>
public static class PodQueries
{
    public static void Map(Fields fields)
    {
        fields.Query("pods", async ctx =>
        {
            var principal = ctx.ResourceReader();
            var ns = ctx.GetArgument<string?>("namespace");
            var query = ctx.Service<IQuerySession>().Query<PodView>().AsQueryable();
            if (principal.TenantId is { } tenant) query = query.Where(p => p.TenantId == tenant);
            if (ns is not null) query = query.Where(p => p.Namespace == ns);
            var page = await CreationOrderPages.ReadAsync(ctx, query, "pod", p => p.CreatedTicks, p => p.Id);
            return new PodConnection(page.Nodes.Select(PodDto.From).ToList(), page.PageInfo, page.TotalCount);
        });

        fields.Query("pod", async ctx =>
        {
            var principal = ctx.ResourceReader();
            if (!Guid.TryParse(ctx.GetArgument<string>("id"), out var id)) return null;
            var session = ctx.Service<IQuerySession>();
            PodDto? pod;
            if (ctx.GetArgument<DateTime?>("asOf") is { } asOf)
            {
                await ArchiveBoundary.RequireStreamAtAsync(ctx, id, asOf, "Pod");
                var (state, version) = await ctx.Service<PlatformCheckpoints>()
                    .StreamAtAsync<Pod>(id, new DateTimeOffset(DateTime.SpecifyKind(asOf, DateTimeKind.Utc)), ctx.CancellationToken);
                pod = state.Exists ? PodDto.From(state, version) : null;
            }
            else
            {
                var view = await session.LoadAsync<PodView>(id, ctx.CancellationToken);
                pod = view is null ? null : PodDto.From(view);
            }
            return pod is not null && (principal.TenantId is null || principal.TenantId == pod.TenantId) ? pod : null;
        });
    }
}
