using Kraud.Api.Common;

namespace Kraud.Api.Products;

/// <summary>The product catalog with live capacity behind it.</summary>
public sealed class ProductsSlice : KraudSlice
{
    public override void MapFields(Fields fields) => ProductsQuery.Map(fields);
}
