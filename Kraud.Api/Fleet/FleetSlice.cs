using Kraud.Api.Common;
using Kraud.Projections.Fleet;
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
        services.AddRunOnceRound<HostFailureDetector>("failure-detection");
        // The schedulers' copies of free capacity live as long as the process: a restart reads them in full again.
        services.AddSingleton<PlacementCapacities>();
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<HostLiveness>();
        marten.Schema.For<HostSealingKey>();
        // Hosts decide from their inline view, not through a decider projection; their streams are compacted all the same.
        marten.Events.AddEventType<JasperFx.Events.Compacted<Kraud.Domain.Fleet.Host>>();
    }
}
