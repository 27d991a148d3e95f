namespace Kraud.Projections.Audit;

/// <summary>The metadata of one event that its audit entries are made of (Marten's event or a row of mt_events).</summary>
public readonly record struct AuditedEvent(long Seq, DateTimeOffset At, Guid StreamId, string Type, string? CorrelationId, string? CausationId,
    string? Actor, string? Tenant, string? Command, string? CommandId);

/// <summary>
/// Appends the entries of events to the chain after a head: one for a command when its first event is seen, then one
/// for each event, each hashed over its content and the previous hash. The live projection and the bulk rebuild both
/// link through this, so they make the same chain.
/// </summary>
public sealed class AuditChainLinker
{
    private const int RememberedCommands = 512;
    private readonly AuditChainHead _head;
    private readonly HashSet<string> _recent;

    public AuditChainLinker(AuditChainHead from)
    {
        _head = new AuditChainHead
        {
            LastEntry = from.LastEntry, LastEventSeq = from.LastEventSeq, Hash = from.Hash, RecentCommands = [.. from.RecentCommands],
        };
        _recent = [.. _head.RecentCommands];
    }

    public AuditChainHead Head => _head;

    /// <summary>Links the entries of <paramref name="e"/> and hands each to <paramref name="emit"/>; an event at or before the head is skipped.</summary>
    public void Link(in AuditedEvent e, Action<AuditEntry> emit)
    {
        if (e.Seq <= _head.LastEventSeq) return;
        if (e.Command is not null && e.CommandId is not null && !_recent.Contains(e.CommandId))
        {
            emit(Entry(e, e.Command, "accepted"));
            _head.RecentCommands.Add(e.CommandId);
            _recent.Add(e.CommandId);
            if (_head.RecentCommands.Count > RememberedCommands)
            {
                _recent.Remove(_head.RecentCommands[0]);
                _head.RecentCommands.RemoveAt(0);
            }
        }
        emit(Entry(e, e.Type, "recorded"));
        _head.LastEventSeq = e.Seq;
    }

    private AuditEntry Entry(in AuditedEvent e, string action, string outcome)
    {
        var entry = new AuditEntry
        {
            Id = _head.LastEntry + 1,
            EventSeq = e.Seq,
            At = e.At,
            TenantId = Guid.TryParse(e.Tenant, out var t) ? t : null,
            Actor = e.Actor ?? "system",
            Action = action,
            ResourceId = e.StreamId == Guid.Empty ? null : e.StreamId,
            Outcome = outcome,
            CorrelationId = e.CorrelationId,
            CausationId = e.CausationId,
            PreviousHash = _head.Hash,
        };
        entry.Hash = entry.ComputeHash();
        _head.LastEntry = entry.Id;
        _head.Hash = entry.Hash;
        return entry;
    }
}
