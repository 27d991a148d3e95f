namespace Kraud.Projections.Audit;

/// <summary>One archive written: the part of the log and of the audit chain it holds, and where the file is.</summary>
public sealed class EventArchiveRecord
{
    /// <summary>The last audit entry it holds (the signed digest's head): one archive per head.</summary>
    public long Id { get; set; }
    public long FromEntry { get; set; }
    public long FromSeq { get; set; }
    public long ToSeq { get; set; }
    public long Events { get; set; }
    public string HeadHash { get; set; } = "";
    public DateTimeOffset Boundary { get; set; }
    public string File { get; set; } = "";
    public long Bytes { get; set; }
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>
    /// The chain linker's recent command ids at the head (AuditChainHead.RecentCommands), found by linking the archived
    /// events again: a chain rebuild after a removal starts from this head, without the events that named them.
    /// </summary>
    public List<string> RecentCommands { get; set; } = [];

    /// <summary>True when linking the archived events after the previous archive's head gave this archive's head and hash.</summary>
    public bool Relinked { get; set; }

    /// <summary>
    /// 0 while the log keeps everything; otherwise the checkpoint of the platform projection up to which the events of
    /// ended streams were removed from mt_events (see ArchivedEventRemoval).
    /// </summary>
    public long RemovedUpToSeq { get; set; }

    /// <summary>The latest time of an event at or before RemovedUpToSeq: reads of earlier instants need an archive.</summary>
    public DateTimeOffset? RemovedBefore { get; set; }

    public long RemovedEvents { get; set; }

    /// <summary>Events of live streams up to the cut replaced by their streams' snapshots (LiveStreamCompaction).</summary>
    public long CompactedEvents { get; set; }

    /// <summary>False while a removal runs, and after one that stopped half-way (removeArchivedEvents goes on with it).</summary>
    public bool RemovalFinished { get; set; }
}
