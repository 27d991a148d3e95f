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

    public static async Task Handle(MicroVmBooted r, IDocumentSession session, IMessageContext context, TimeProvider time, AttestationTrust trust,
        IPods pods, Telemetry.KraudMetrics metrics)
    {
        metrics.BootLatency.Record(r.BootMs / 1000.0);
        var booted = new VmBooted(r.BootMs, new AttestationEvidence(r.Attestation, trust), r.EncryptedEphemeralGiB,
            r.ImageDigest is { } digest ? new PulledImage(digest, r.DownloadedBytes) : null);
        var pod = await Record(session, context, pods, r, booted, time);
        // A guest that failed attestation runs code nobody vouched for: it is stopped now, not at the next reconciliation.
        // No pod id on the stop: the replica is FAILED already, and the host's answer has nothing to add to the pod.
        if (pod.Attestation is { Verified: false } && pod.Instance(r.VmId) is { Phase: VmPhase.Failed } vm)
            await context.EndpointFor(HostQueues.Uri(vm.HostName)).SendAsync(new StopMicroVm(r.HostId, r.VmId, Guid.Empty));
    }

    public static Task Handle(MicroVmFailed r, IDocumentSession session, IMessageContext context, TimeProvider time, IPods pods) =>
        Record(session, context, pods, r, new VmFailed(r.Reason), time);

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
        pods.ExecuteAsync(session, context, new RecordVmReport(r.PodId, r.VmId, r.HostId, report, time.GetUtcNow()),
            Principal.System($"host:{r.HostId}"));
}
