using Kraud.Api.Common;
using Kraud.Api.Pods;
using Kraud.Domain.Access;
using Kraud.Domain.Confidential;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Fleet;

/// <summary>What host runtimes report, turned into facts on the pod's stream (and freed capacity on the host's).</summary>
public static class HostReportsHandler
{
    public static Task Handle(MicroVmBootStarted r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Record(session, context, r, new VmBooting(), time);

    public static async Task Handle(MicroVmBooted r, IDocumentSession session, IMessageContext context, TimeProvider time, AttestationTrust trust,
        Telemetry.KraudMetrics metrics)
    {
        metrics.BootLatency.Record(r.BootMs / 1000.0);
        var pod = await Record(session, context, r, new VmBooted(r.BootMs, new AttestationEvidence(r.Attestation, trust), r.EncryptedEphemeralGiB), time);
        // A guest that failed attestation runs code nobody vouched for: it is stopped now, not at the next reconciliation.
        // No pod id on the stop: the replica is FAILED already, and the host's answer has nothing to add to the pod.
        if (pod.Attestation is { Verified: false } && pod.Instance(r.VmId) is { Phase: VmPhase.Failed } vm)
            await context.EndpointFor(PodStreams.HostUri(vm.HostName)).SendAsync(new StopMicroVm(r.HostId, r.VmId, Guid.Empty));
    }

    public static Task Handle(MicroVmFailed r, IDocumentSession session, IMessageContext context, TimeProvider time) =>
        Record(session, context, r, new VmFailed(r.Reason), time);

    public static async Task Handle(MicroVmStopped r, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        if (r.PodId == Guid.Empty) return; // a VM no pod owned, stopped by reconciliation: the host stream recorded it already
        var pod = await Record(session, context, r, new VmStopped(r.EphemeralErased), time);
        if (pod.State == PodState.Stopped)
            session.Delete<NameClaim>(NameClaim.For("pod", pod.TenantId.ToString(), pod.Spec.Namespace, pod.Spec.Name));
    }

    private static Task<Pod> Record(IDocumentSession session, IMessageContext context, IMicroVmReport r, VmReport report, TimeProvider time) =>
        PodStreams.ExecuteAsync(session, context, new RecordVmReport(r.PodId, r.VmId, r.HostId, report, time.GetUtcNow()),
            Principal.System($"host:{r.HostId}"));

    /// <summary>A host runtime that starts up is registered the first time; afterwards its announcement changes nothing.</summary>
    public static async Task Handle(HostAnnounced a, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        var by = Principal.System("fleet");
        if (await session.Events.FetchStreamStateAsync(a.HostId) is null)
        {
            var command = new RegisterHost(a.HostId, a.Name, a.Zone, a.Datacenter, a.Rack, Enum.Parse<HostRole>(a.Role, ignoreCase: true), a.Cpu,
                a.MemoryMiB, a.NvmeGiB, a.SevSnp, by, time.GetUtcNow());
            await RegisterHostHandler.Apply(session, context, command);
        }
        if (a.WireGuardPublicKey is not null)
            await Network.WireGuardKeyAnnouncement.RecordAsync(session, context, a.HostId, a.Name, a.WireGuardPublicKey, a.WireGuardEndpoint ?? a.Name,
                time.GetUtcNow());
        if (a.Accelerator is not null)
            await HostStreams.RecordAnnouncedAsync(session, context, a.HostId, nameof(ReportAccelerator),
                host => HostDecider.Decide(new ReportAccelerator(a.HostId, a.Accelerator, a.AcceleratorReason ?? "", time.GetUtcNow()), host));
    }
}
