using Kraud.Projections.Tenants;

namespace Kraud.Api.Gql;

public sealed record TenantDto(Guid Id, string Name, DateTime CreatedAt, object? Vpc)
{
    public static TenantDto From(TenantView v) => new(v.Id, v.Name, v.CreatedAt.UtcDateTime, null);
}
