using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Common;

/// <summary>
/// Asks the scheduler to place whatever replicas of the pod have no host. It carries the request's correlation id,
/// since the scheduler handles these in batches whose envelope belongs to no single request.
/// </summary>
/// <param name="TraceParent">The asking trace (W3C traceparent): the scheduler handles requests in batches, whose one
/// envelope cannot carry every request's trace, so each request carries its own and the placement continues it.</param>
/// <param name="At">When the pod asked for hosts: the placement latency is measured from here.</param>
/// <param name="Others">More pods asked for in the same message (<see cref="PodAwaitsPlacement"/>): one envelope through the
/// scheduler's queue for a node's asks of a moment, not one per pod.</param>
public sealed record SchedulePod(Guid PodId, string? CorrelationId, string? TraceParent = null, DateTimeOffset? At = null,
    IReadOnlyList<SchedulePod>? Others = null)
{
    /// <summary>This request and the others it carries, each on its own.</summary>
    public IEnumerable<SchedulePod> Each() => Others is null ? [this] : [this with { Others = null }, .. Others];
}

/// <summary>
/// A pod has replicas without a host, asked for in memory after the commit that left them so: the node gathers its asks
/// of a moment into one <see cref="SchedulePod"/>. Lost with its node, the ask is repaired by the scheduler's repair round.
/// </summary>
public sealed record PodAwaitsPlacement(SchedulePod Request);

/// <summary>Asks the volume scheduler to place whatever replicas of the volume have no storage host.</summary>
public sealed record ScheduleVolume(Guid VolumeId, string? CorrelationId);

/// <summary>The file server pod of a GFS volume changed state (it may serve now, or no longer): the volume's pods may be placed.</summary>
public sealed record FileServerChanged(Guid VolumeId);

/// <summary>Tells the mesh that these tenants' microVMs or the hosts' keys changed: peer sets are computed again.</summary>
public sealed record MeshChanged(string Why);

/// <summary>An INGRESS host changed state (failed, drained, back, new): managed ingresses may have replicas to move or restore.</summary>
public sealed record RepairIngresses(string HostName);

/// <summary>Where a host runtime reads its commands: its own PostgreSQL queue.</summary>
public static class HostQueues
{
    public static Uri Uri(string hostName) => new($"postgresql://{Host.QueueName(hostName)}");
}

/// <summary>
/// A tenant's pod command as an API received it (GraphQL's pod mutations, the Docker API), with the version the caller
/// expects the pod to be at. Pods handles it: one path, so both APIs make the same events, audit entries and errors.
/// </summary>
public sealed record PodRequest(PodCommand Command, Principal By, int? ExpectedVersion = null) : ICommandRequest
{
    object ICommandRequest.Command => Command;
}
