using Kraud.Api.Common;
using Marten;

namespace Kraud.Api.Fleet;

/// <summary>Hosts and zones: registration, cordon and drain, liveness, failure detection and placement retries.</summary>
public sealed class FleetSlice : KraudSlice
{
    public override void MapFields(Fields fields)
    {
        HostQueries.Map(fields);
        RegisterHostField.Map(fields);
        CordonHostFields.Map(fields);
    }

    public override void AddServices(IServiceCollection services)
    {
        services.AddHostedService<HostFailureDetector>();
        services.AddHostedService<PlacementRetry>();
    }

    public override void ConfigureMarten(StoreOptions marten) => marten.Schema.For<HostLiveness>();
}
