using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Projections.Tenants;
using Marten;

namespace Kraud.Api.Access;

public sealed record PrincipalDto(string TokenId, string Role, TenantDto? Tenant);

public static class MeQuery
{
    public static void Map(Fields fields) => fields.Query("me", async ctx =>
    {
        var principal = ctx.Caller().Principal;
        var tenant = principal.TenantId is { } id ? await ctx.Service<IQuerySession>().LoadAsync<TenantView>(id, ctx.CancellationToken) : null;
        return new PrincipalDto(principal.TokenId, Enums.Name(principal.Role), tenant is null ? null : TenantDto.From(tenant));
    });
}
