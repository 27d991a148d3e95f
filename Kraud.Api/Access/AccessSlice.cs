using Kraud.Api.Common;
using Marten;

namespace Kraud.Api.Access;

/// <summary>Who may do what: the caller's own principal, API tokens, and the operator token issued at first start.</summary>
public sealed class AccessSlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        MeQuery.Map(fields);
        CreateApiTokenField.Map(fields);
        RevokeApiTokenField.Map(fields);
    }

    public override void ConfigureMarten(StoreOptions marten) => marten.AddDecider<Kraud.Domain.Access.ApiToken>();

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton<OperatorBootstrap>();
        services.AddHostedService(sp => sp.GetRequiredService<OperatorBootstrap>());
    }
}
