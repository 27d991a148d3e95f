using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
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
        if (view!.Host.Role == HostRole.Ingress) await context.PublishAsync(new RepairIngresses(view.Host.Name));
        if (view.Host.State != HostState.Ready && events.Aggregate(view.Host, (h, e) => h.Evolve(e)).State == HostState.Ready)
            await context.PublishAsync(new HostHasRoom(hostId));
        return new HostChange(view!.Host, events);
    }

    /// <summary>
    /// A fact a host runtime announces about its own host at start (its WireGuard key, its accelerator): appended without a
    /// version, under the stream's lock like capacity events. The host may have been registered in this very transaction,
    /// so what the session is about to commit is folded too. Returns what was appended (nothing when nothing changed).
    /// </summary>
    public static async Task<IReadOnlyList<object>> RecordAnnouncedAsync(IDocumentSession session, IMessageContext context, Guid hostId,
        string command, Func<Host, IReadOnlyList<object>> decide)
    {
        await Streams.LockAsync(session, [hostId]);
        var host = (await session.LoadAsync<HostView>(hostId))?.Host
                   ?? Fold.Events<Host>(session.PendingChanges.Streams().Where(s => s.Id == hostId).SelectMany(s => s.Events).Select(e => e.Data));
        var events = decide(host);
        if (events.Count > 0) session.Events.Append(hostId, events).Stamp(AuditStamp.For(context, Principal.System($"host:{hostId}"), null, command));
        return events;
    }
}
