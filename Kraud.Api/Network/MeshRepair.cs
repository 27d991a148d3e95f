using Kraud.Api.Common;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Network;

/// <summary>
/// Asks for a mesh computation every half minute. <see cref="MeshChanged"/> travels on in-memory queues (a durable one
/// cost an insert, a status update and a delete per message, two messages per pod), so a node that dies between the commit
/// that published one and its mesh batch loses it; the computation reads everything from the committed state and changes
/// only the peer sets that differ, so the next round repairs what the lost message would have done.
/// </summary>
public sealed class MeshRepair(IWolverineRuntime runtime, TimeProvider time, ILogger<MeshRepair> logger) : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(30);
    protected override string FailureMessage => "Asking for the mesh's repair round failed";

    protected override async Task RoundAsync(CancellationToken ct) =>
        await new MessageBus(runtime).PublishAsync(new MeshChanged("repair round"));
}
