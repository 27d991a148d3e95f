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
        Record(session, context, r, new ReplicaReady(r.Encrypted, r.NewKey?.KeyId, r.NewKey?.KekId,
            r.Export is { } x ? new ExportAddress(x.Address, x.Port) : null), time, r.NewKey);

    public static Task Handle(ReplicaReportedBad r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        VolumeStreams.ExecuteAsync(session, context, new RecordReplicaReport(r.VolumeId, r.Fault.ReplicaHostId,
            new ReplicaBad(r.Fault.Offset, r.Fault.Length, $"microVM {r.VmId}'s quorum: {r.Fault.Detail}"), time.GetUtcNow()), Principal.System($"host:{r.HostId}"));

    public static Task Handle(VolumeScrubReport r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Work(session, context, r, new ScrubDone(r.Bytes, r.Seconds,
            r.Bad.Select(b => new ReplicaDifference(b.ReplicaHostId, b.Offset, b.Length, b.Detail)).ToList(), r.Unresolved), time);

    public static Task Handle(VolumeFormatted r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Work(session, context, r, new VolumeFormatDone(r.Key.KeyId, r.Key.KekId), time, r.Key);

    public static Task Handle(ReplicaResyncProgress r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Work(session, context, r, new ResyncProgressed(r.ReplicaHostId, r.SyncedBytes, r.TotalBytes, r.BytesPerSecond), time);

    public static Task Handle(ReplicaResynced r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Work(session, context, r, new ResyncDone(r.ReplicaHostId, r.Bytes, r.Seconds, r.PauseMs), time);

    public static Task Handle(VolumeWorkFailedReport r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Work(session, context, r, new WorkFailed(r.ReplicaHostId, r.Reason), time);

    private static Task<Volume> Work(IDocumentSession session, IMessageContext context, IVolumeReport r, WorkReport report, TimeProvider time,
        WrappedKey? newKey = null) =>
        VolumeStreams.ExecuteAsync(session, context, new RecordWorkReport(r.VolumeId, r.HostId, report, time.GetUtcNow()),
            Principal.System($"host:{r.HostId}"), newKey: newKey);

    public static Task Handle(ReplicaProvisionFailed r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Record(session, context, r, new ReplicaFailed(r.Reason), time);

    public static Task Handle(ReplicaDestroyed r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Record(session, context, r, new ReplicaErased(), time);

    private static Task<Volume> Record(IDocumentSession session, IMessageContext context, IVolumeReport r, ReplicaReport report, TimeProvider time,
        WrappedKey? newKey = null) =>
        VolumeStreams.ExecuteAsync(session, context, new RecordReplicaReport(r.VolumeId, r.HostId, report, time.GetUtcNow()),
            Principal.System($"host:{r.HostId}"), newKey: newKey);
}
