using JasperFx.Events;
using Kraud.Domain.Fleet;
using Kraud.Projections.Common;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Fleet;

/// <summary>A host with the capacity the scheduler has handed out. Inline: the scheduler reads it right after it placed work.</summary>
public sealed class HostView
{
    public Guid Id { get; set; }
    public string Name { get; set; } = "";
    public string Zone { get; set; } = "";
    public HostRole Role { get; set; }
    public HostState State { get; set; }
    public int CpuUsed { get; set; }
    public int MemoryUsedMiB { get; set; }
    public Host Host { get; set; } = Host.Initial;
}

public sealed class HostViewProjection : SingleStreamProjection<HostView, Guid>
{
    public override HostView? Evolve(HostView? snapshot, Guid id, IEvent e)
    {
        var host = Snapshots.Evolve(snapshot?.Host, e);
        if (!host.Exists) return snapshot;
        return new HostView
        {
            Id = host.Id,
            Name = host.Name,
            Zone = host.Zone,
            Role = host.Role,
            State = host.State,
            CpuUsed = host.CpuUsed,
            MemoryUsedMiB = host.MemoryUsedMiB,
            Host = host,
        };
    }
}
