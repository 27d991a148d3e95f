using JasperFx.Events;
using Marten;
using Marten.Events.Projections;

namespace Kraud.Projections.Audit;

/// <summary>
/// Turns the event log into a hash chain (async). Each command gets one entry when its first event is seen, then each
/// event gets one. Everything in an entry comes from the event and its metadata, so a rebuild yields the identical chain.
/// </summary>
public sealed class AuditChainProjection : IProjection
{
    public const string Name = "AuditChain";
    private const int RememberedCommands = 512;

    // The daemon may apply the next batch before the previous one is committed; the head it left is kept here
    // and used only when it is newer than the stored one and directly precedes this batch.
    private AuditChainHead? _pending;

    public async Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        if (events.Count == 0) return;
        var stored = await operations.LoadAsync<AuditChainHead>(AuditChainHead.PlatformChain, cancellation);
        var head = Pick(stored, _pending, events[0].Sequence);
        head = new AuditChainHead
        {
            LastEntry = head.LastEntry, LastEventSeq = head.LastEventSeq, Hash = head.Hash, RecentCommands = [.. head.RecentCommands],
        };

        foreach (var e in events)
        {
            if (e.Sequence <= head.LastEventSeq) continue;
            var command = Header(e, AuditHeaders.Command);
            var commandId = Header(e, AuditHeaders.CommandId);
            if (command is not null && commandId is not null && !head.RecentCommands.Contains(commandId))
            {
                Link(operations, head, e, command, "accepted");
                head.RecentCommands.Add(commandId);
                if (head.RecentCommands.Count > RememberedCommands) head.RecentCommands.RemoveAt(0);
            }
            Link(operations, head, e, e.EventTypeName, "recorded");
            head.LastEventSeq = e.Sequence;
        }
        operations.Store(head);
        _pending = head;
    }

    private static AuditChainHead Pick(AuditChainHead? stored, AuditChainHead? pending, long firstSeq)
    {
        var fromStore = stored ?? new AuditChainHead();
        if (pending is not null && pending.LastEventSeq > fromStore.LastEventSeq && pending.LastEventSeq < firstSeq) return pending;
        return fromStore;
    }

    private static void Link(IDocumentOperations operations, AuditChainHead head, IEvent e, string action, string outcome)
    {
        var entry = new AuditEntry
        {
            Id = head.LastEntry + 1,
            EventSeq = e.Sequence,
            At = e.Timestamp,
            TenantId = Guid.TryParse(Header(e, AuditHeaders.Tenant), out var t) ? t : null,
            Actor = Header(e, AuditHeaders.Actor) ?? "system",
            Action = action,
            ResourceId = e.StreamId == Guid.Empty ? null : e.StreamId,
            Outcome = outcome,
            CorrelationId = e.CorrelationId,
            CausationId = e.CausationId,
            PreviousHash = head.Hash,
        };
        entry.Hash = entry.ComputeHash();
        operations.Store(entry);
        head.LastEntry = entry.Id;
        head.Hash = entry.Hash;
    }

    private static string? Header(IEvent e, string name) =>
        e.Headers is not null && e.Headers.TryGetValue(name, out var value) ? value?.ToString() : null;
}
