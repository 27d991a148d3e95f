using Kraud.Api.Common;
using Kraud.Domain.Fleet;
using Marten;
using Wolverine;

namespace Kraud.Api.Fleet;

/// <summary>A host runtime's public WireGuard key, from its announcement; a new key makes the mesh recompute peer sets.</summary>
public static class WireGuardKeyAnnouncement
{
    public static async Task RecordAsync(IDocumentSession session, IMessageContext context, Guid hostId, string hostName, string publicKey,
        string endpoint, DateTimeOffset at)
    {
        var events = await HostStreams.RecordAnnouncedAsync(session, context, hostId, nameof(AnnounceWireGuardKey),
            host => HostDecider.Decide(new AnnounceWireGuardKey(hostId, publicKey, endpoint, at), host));
        if (events.Count > 0) await context.PublishAsync(new MeshChanged($"host {hostName} announced a WireGuard key"));
    }
}
