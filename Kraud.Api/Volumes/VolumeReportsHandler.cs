using Kraud.Domain.Access;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Volumes;
using Marten;
using Wolverine;

namespace Kraud.Api.Volumes;

/// <summary>What storage hosts report about their replicas, turned into facts on the volume's stream.</summary>
public static class VolumeReportsHandler
{
    public static Task Handle(ReplicaProvisioned r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Record(session, context, r, new ReplicaReady(r.Encrypted, r.NewKey?.KeyId, r.NewKey?.KekId), time, r.NewKey);

    public static Task Handle(ReplicaProvisionFailed r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Record(session, context, r, new ReplicaFailed(r.Reason), time);

    public static Task Handle(ReplicaDestroyed r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Record(session, context, r, new ReplicaErased(), time);

    private static Task<Volume> Record(IDocumentSession session, IMessageContext context, IVolumeReport r, ReplicaReport report, TimeProvider time,
        WrappedKey? newKey = null) =>
        VolumeStreams.ExecuteAsync(session, context, new RecordReplicaReport(r.VolumeId, r.HostId, report, time.GetUtcNow()),
            Principal.System($"host:{r.HostId}"), newKey: newKey);
}
