using Kraud.Api.Common;

namespace Kraud.Api.Tenants;

/// <summary>Tenants: created by operators, each with its VPC.</summary>
public sealed class TenantsSlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        TenantQueries.Map(fields);
        CreateTenantField.Map(fields);
    }
}
