using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Network;

/// <summary>A host runtime's public WireGuard key, from its announcement; a new key makes the mesh recompute peer sets.</summary>
public static class WireGuardKeyAnnouncement
{
    public static async Task RecordAsync(IDocumentSession session, IMessageContext context, Guid hostId, string publicKey, string endpoint,
        DateTimeOffset at)
    {
        await Streams.LockAsync(session, [hostId]);
        // The host may have been registered in this very transaction: fold what the session is about to commit too.
        var host = (await session.LoadAsync<HostView>(hostId))?.Host
                   ?? Fold.Events<Host>(session.PendingChanges.Streams().Where(s => s.Id == hostId).SelectMany(s => s.Events).Select(e => e.Data));
        var events = HostDecider.Decide(new AnnounceWireGuardKey(hostId, publicKey, endpoint, at), host);
        if (events.Count == 0) return;
        session.Events.Append(hostId, events).Stamp(AuditStamp.For(context, Principal.System($"host:{hostId}"), null, nameof(AnnounceWireGuardKey)));
        await context.PublishAsync(new MeshChanged($"host {host.Name} announced a WireGuard key"));
    }
}
