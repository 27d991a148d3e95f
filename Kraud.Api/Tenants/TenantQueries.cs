using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Projections.Tenants;
using Marten;

namespace Kraud.Api.Tenants;

/// <summary>Operators see every tenant; anyone else sees only their own.</summary>
public static class TenantQueries
{
    public static void Map(Fields fields)
    {
        fields.Query("tenants", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            var session = ctx.Service<IQuerySession>();
            var tenants = principal.Role == Role.Operator
                ? await session.Query<TenantView>().OrderBy(t => t.Name).ToListAsync(ctx.CancellationToken)
                : principal.TenantId is { } own
                    ? await session.Query<TenantView>().Where(t => t.Id == own).ToListAsync(ctx.CancellationToken)
                    : [];
            return tenants.Select(TenantDto.From).ToList();
        });
        fields.Query("tenant", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (!Guid.TryParse(ctx.GetArgument<string>("id"), out var id)) return null;
            if (principal.Role != Role.Operator && principal.TenantId != id) return null;
            var tenant = await ctx.Service<IQuerySession>().LoadAsync<TenantView>(id, ctx.CancellationToken);
            return tenant is null ? null : TenantDto.From(tenant);
        });
    }
}
