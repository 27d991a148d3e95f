using Kraud.Projections.Audit;

namespace Kraud.Api.Common;

/// <summary>
/// The contract's EventArchive: what archiveEvents and removeArchivedEvents answer (the audit slice), and the archives a
/// timeline that reaches before the boundary names (timelineArchives, the replay slice).
/// </summary>
public sealed record EventArchiveDto(string File, long FromSeq, long ToSeq, long Events, long FromEntry, long ToEntry, string HeadHash, DateTime Boundary,
    long Bytes, double Seconds, long RemovedUpToSeq, long RemovedEvents, DateTime? RemovedBefore,
    long CompactedEvents)
{
    public static EventArchiveDto From(EventArchiveRecord r, double seconds) =>
        new(r.File, r.FromSeq, r.ToSeq, r.Events, r.FromEntry, r.Id, r.HeadHash, r.Boundary.UtcDateTime, r.Bytes, Math.Round(seconds, 3), r.RemovedUpToSeq,
            r.RemovedEvents, r.RemovedBefore?.UtcDateTime, r.CompactedEvents);
}
