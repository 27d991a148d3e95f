using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Products;

namespace Kraud.Api.Products;

public sealed record ProductDto(string Name, string Category, bool Sla, string Redundancy, string SecurityBarrier, string Readiness, string? Notes);

public static class ProductsQuery
{
    public static void Map(Fields fields) => fields.Query("products", _ => Task.FromResult(ProductCatalog.All
        .Select(p => new ProductDto(p.Name, p.Category, p.Sla, p.Redundancy, p.SecurityBarrier, Enums.Name(p.Readiness), p.Notes))
        .ToList()));
}
