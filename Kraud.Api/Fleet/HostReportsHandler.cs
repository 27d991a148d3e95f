using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Domain.HostProtocol;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

namespace Kraud.Api.Fleet;

/// <summary>
/// A host runtime announces itself at start: registration the first time, its WireGuard key, accelerator and sealing key
/// always. One handler for the one message: Wolverine 7 no longer runs two handlers of a message in one transaction.
/// </summary>
public static class HostReportsHandler
{
    /// <summary>A host runtime that starts up is registered the first time; afterwards its announcement changes nothing.</summary>
    public static async Task Handle(HostAnnounced a, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        if (a.SealingKey is { } key)
            session.Store(new HostSealingKey { Id = a.HostId, KeyId = key.KeyId, PublicKey = key.PublicKey, AnnouncedAt = time.GetUtcNow() });
        var by = Principal.System("fleet");
        if (await session.Events.FetchStreamStateAsync(a.HostId) is null)
        {
            var command = new RegisterHost(a.HostId, a.Name, a.Zone, a.Datacenter, a.Rack, Enum.Parse<HostRole>(a.Role, ignoreCase: true), a.Cpu,
                a.MemoryMiB, a.NvmeGiB, a.SevSnp, by, time.GetUtcNow());
            await RegisterHostHandler.Apply(session, context, command);
        }
        if (a.WireGuardPublicKey is not null)
            await WireGuardKeyAnnouncement.RecordAsync(session, context, a.HostId, a.Name, a.WireGuardPublicKey, a.WireGuardEndpoint ?? a.Name,
                time.GetUtcNow());
        if (a.Accelerator is not null)
            await HostStreams.RecordAnnouncedAsync(session, context, a.HostId, nameof(ReportAccelerator),
                host => HostDecider.Decide(new ReportAccelerator(a.HostId, a.Accelerator, a.AcceleratorReason ?? "", time.GetUtcNow()), host));
        if (a is { IngressEndpoint: { } endpoint, IngressTunnelAddress: { } tunnel }
            && (await HostStreams.RecordAnnouncedAsync(session, context, a.HostId, nameof(AnnounceIngressProxy),
                host => HostDecider.Decide(new AnnounceIngressProxy(a.HostId, endpoint, tunnel, time.GetUtcNow()), host))).Count > 0)
            await context.PublishAsync(new MeshChanged($"ingress host {a.Name} runs a proxy at {endpoint}"));
    }
}
