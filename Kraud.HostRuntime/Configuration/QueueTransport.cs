using Wolverine;
using Wolverine.Postgresql.Transport;

namespace Kraud.HostRuntime.Configuration;

public static class QueueTransport
{
    /// <summary>Control plane and host runtimes must agree on where the queue tables live.</summary>
    public const string Schema = "kraud_queues";

    /// <summary>LISTEN/NOTIFY wake-ups: delivery in milliseconds instead of a polling interval.</summary>
    public static void TuneQueueTransport(this WolverineOptions opts)
    {
        var transport = opts.Transports.GetOrCreate<PostgresqlTransport>();
        transport.TransportSchemaName = Schema;
        transport.EnableQueueNotifications = true;
    }
}
