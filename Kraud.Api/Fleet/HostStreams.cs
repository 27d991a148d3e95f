using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Fleet;

/// <summary>A decision about a host: what it was, and the events that changed it.</summary>
public sealed record HostChange(Host Before, IReadOnlyList<object> Events);

public static class HostStreams
{
    /// <summary>
    /// A scheduler batch's hosts: every host of the role, locked in one statement before its capacity is read. Releases
    /// reported meanwhile wait for the batch to commit, and a cordon or drain decided meanwhile meets its version check
    /// and decides again on the new placements. Locked all at once, a batch never waits on other writers in a circle.
    /// </summary>
    public static async Task<Dictionary<Guid, Host>> LockForPlacementAsync(IDocumentSession session, HostRole role)
    {
        await Streams.LockAsync(session, await session.Query<HostView>().Where(h => h.Role == role).Select(h => h.Id).ToListAsync());
        return (await session.Query<HostView>().Where(h => h.Role == role).ToListAsync()).ToDictionary(h => h.Id, h => h.Host);
    }

    /// <summary>
    /// The one path of every decision about a host (cordon, drain, failure, recovery): decide on its current state and
    /// append with the stream's version. Returns null when nothing changed.
    /// </summary>
    public static async Task<HostChange?> DecideAsync(IDocumentSession session, IMessageContext context, Guid hostId, Principal by, string command,
        Func<Host, IReadOnlyList<object>> decide)
    {
        var view = await session.LoadAsync<HostView>(hostId);
        var events = decide(view?.Host ?? Host.Initial);
        if (events.Count == 0) return null;
        // Capacity events reach host streams without an expected version, so the stream, not the view, knows the version.
        var stream = await session.Events.FetchStreamStateAsync(hostId);
        session.Stamp(context, by, null, command);
        session.Events.Append(hostId, stream!.Version + events.Count, events);
        if (view!.Host.Role == HostRole.Ingress) await context.PublishAsync(new Ingresses.RepairIngresses(view.Host.Name));
        return new HostChange(view!.Host, events);
    }
}
