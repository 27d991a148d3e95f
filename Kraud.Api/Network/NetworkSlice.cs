using JasperFx.Core;
using Kraud.Api.Common;
using Marten;
using Wolverine;

namespace Kraud.Api.Network;

/// <summary>VPCs and IPAM, and the WireGuard mesh between hosts.</summary>
public sealed class NetworkSlice : KraudSlice
{
    public override void MapFields(Fields fields) => VpcQueries.Map(fields);

    public override void AddServices(IServiceCollection services)
    {
        services.AddSingleton<IAddresses, AddressesContract>();
        services.AddRunOnceRound<MeshRepair>("mesh-repair");
    }

    public override void ConfigureMarten(StoreOptions marten)
    {
        marten.Schema.For<AddressClaim>().Index(x => x.Pool);
        marten.AddDecider<Kraud.Domain.Network.Vpc>();
    }

    public override void ConfigureWolverine(WolverineOptions wolverine)
    {
        // Mesh changes coalesce: one computation of every peer set per batch, one batch at a time.
        wolverine.BatchMessagesOf<MeshChanged>(batch =>
        {
            batch.BatchSize = 1000;
            // Each batch recomputes the whole fleet's peer sets: a burst of placements should cost one, not dozens.
            batch.TriggerTime = 250.Milliseconds();
            batch.LocalExecutionQueueName = MeshHandler.Queue;
        }).BufferedInMemory();
        // In memory, not durable: a change lost with its node is repaired by MeshRepair's next round.
        wolverine.LocalQueue(MeshHandler.Queue).Sequential().BufferedInMemory();
    }
}
