using JasperFx.Events;
using Kraud.Domain.Compliance;
using Marten.Events.Aggregation;

namespace Kraud.Projections.Compliance;

public sealed class DatacenterAccessView
{
    public Guid Id { get; set; }
    public string Person { get; set; } = "";
    public DateTimeOffset At { get; set; }
    public string Datacenter { get; set; } = "";
    public string Reason { get; set; } = "";
    public string CameraSnapshotSha256 { get; set; } = "";
    public string RecordedBy { get; set; } = "";
}

public sealed class DatacenterAccessViewProjection : SingleStreamProjection<DatacenterAccessView, Guid>
{
    public override DatacenterAccessView? Evolve(DatacenterAccessView? snapshot, Guid id, IEvent e) => e.Data switch
    {
        DatacenterAccessRecorded r => new DatacenterAccessView
        {
            Id = r.AccessId, Person = r.Person, At = r.At, Datacenter = r.Datacenter, Reason = r.Reason, CameraSnapshotSha256 = r.CameraSnapshotSha256,
            RecordedBy = r.RecordedBy,
        },
        _ => snapshot,
    };
}
