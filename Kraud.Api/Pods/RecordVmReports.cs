using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Confidential;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Pods;

/// <summary>What host runtimes report about microVMs, turned into facts on the pod's stream (and freed capacity on the host's).</summary>
public static class VmReportsHandler
{
    public static Task Handle(MicroVmBootStarted r, IDocumentSession session, IMessageContext context, TimeProvider time, IPods pods) =>
        Record(session, context, pods, r, new VmBooting(), time);

    public static Task Handle(MicroVmBooted r, IDocumentSession session, IMessageContext context, TimeProvider time, AttestationTrust trust,
        IPods pods, Telemetry.KraudMetrics metrics) =>
        BootedAsync(r, session, context, time, trust, pods, metrics, correlationId: null, loaded: null);

    public static Task Handle(MicroVmFailed r, IDocumentSession session, IMessageContext context, TimeProvider time, IPods pods) =>
        Record(session, context, pods, r, new VmFailed(r.Reason), time);

    /// <summary>
    /// One host's boots that ended together, recorded in one transaction: their pods' streams fetched in one round trip, each
    /// decided as its report alone would be, with its own correlation id and trace. A pod another writer appended to meanwhile
    /// fails the commit, and the batch is decided again on fresh state (the retry policy), so no report's update is lost.
    /// </summary>
    public static async Task Handle(MicroVmBootReports batch, IDocumentSession session, IMessageContext context, TimeProvider time,
        AttestationTrust trust, IPods pods, Telemetry.KraudMetrics metrics)
    {
        var streams = await Streams.FetchManyForWritingAsync<Pod>(session, batch.Booted.Select(b => b.Message.PodId).Concat(batch.Failed.Select(f => f.Message.PodId)));
        foreach (var b in batch.Booted)
        {
            using var activity = Continue(b.TraceParent, b.Message.PodId);
            var pod = await BootedAsync(b.Message, session, context, time, trust, pods, metrics, b.CorrelationId, streams[b.Message.PodId]);
            // Two replicas of one pod on this host (generations apart): the next decides on this one's outcome.
            streams[b.Message.PodId] = streams[b.Message.PodId] with { State = pod };
        }
        foreach (var f in batch.Failed)
        {
            using var activity = Continue(f.TraceParent, f.Message.PodId);
            var pod = await pods.ExecuteAsync(session, context, Command(f.Message, new VmFailed(f.Message.Reason), time), Principal.System($"host:{f.Message.HostId}"),
                correlationId: f.CorrelationId, loaded: streams[f.Message.PodId]);
            streams[f.Message.PodId] = streams[f.Message.PodId] with { State = pod };
        }
    }

    /// <summary>The batch's one envelope belongs to no single pod: each report goes on in the trace of its own boot.</summary>
    private static System.Diagnostics.Activity? Continue(string? traceParent, Guid podId)
    {
        var activity = traceParent is null ? null
            : Telemetry.KraudMetrics.Tracing.StartActivity("kraud.host.report", System.Diagnostics.ActivityKind.Consumer, traceParent);
        activity?.SetTag("kraud.pod.id", podId.ToString());
        return activity;
    }

    private static async Task<Pod> BootedAsync(MicroVmBooted r, IDocumentSession session, IMessageContext context, TimeProvider time, AttestationTrust trust,
        IPods pods, Telemetry.KraudMetrics metrics, string? correlationId, Loaded<Pod>? loaded)
    {
        metrics.BootLatency.Record(r.BootMs / 1000.0);
        var booted = new VmBooted(r.BootMs, new AttestationEvidence(r.Attestation, trust), r.EncryptedEphemeralGiB,
            r.ImageDigest is { } digest ? new PulledImage(digest, r.DownloadedBytes) : null);
        var pod = await pods.ExecuteAsync(session, context, Command(r, booted, time), Principal.System($"host:{r.HostId}"), correlationId: correlationId, loaded: loaded);
        // A guest that failed attestation runs code nobody vouched for: it is stopped now, not at the next reconciliation.
        // No pod id on the stop: the replica is FAILED already, and the host's answer has nothing to add to the pod.
        if (pod.Attestation is { Verified: false } && pod.Instance(r.VmId) is { Phase: VmPhase.Failed } vm)
            await context.EndpointFor(HostQueues.Uri(vm.HostName)).SendAsync(new StopMicroVm(r.HostId, r.VmId, Guid.Empty));
        return pod;
    }

    /// <summary>The workload exited: recorded at the time the host saw it, with its code; the replica is then replaced after its back-off.</summary>
    public static Task Handle(MicroVmExited r, IDocumentSession session, IMessageContext context, IPods pods) =>
        pods.ExecuteAsync(session, context, new RecordVmReport(r.PodId, r.VmId, r.HostId, new VmExited(r.ExitCode, r.EphemeralErased), r.ExitedAt),
            Principal.System($"host:{r.HostId}"));

    public static async Task Handle(MicroVmStopped r, IDocumentSession session, IMessageContext context, TimeProvider time, IPods pods)
    {
        if (r.PodId == Guid.Empty) return; // a VM no pod owned, stopped by reconciliation: the host stream recorded it already
        var pod = await Record(session, context, pods, r, new VmStopped(r.EphemeralErased), time);
        if (pod.Gone)
            session.Delete<NameClaim>(NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name));
    }

    private static Task<Pod> Record(IDocumentSession session, IMessageContext context, IPods pods, IMicroVmReport r, VmReport report,
        TimeProvider time) =>
        pods.ExecuteAsync(session, context, Command(r, report, time), Principal.System($"host:{r.HostId}"));

    private static RecordVmReport Command(IMicroVmReport r, VmReport report, TimeProvider time) =>
        new(r.PodId, r.VmId, r.HostId, report, time.GetUtcNow());
}
