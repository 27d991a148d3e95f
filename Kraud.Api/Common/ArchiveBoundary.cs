using Kraud.Api.Gql;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Marten;
using Npgsql;

namespace Kraud.Api.Common;

/// <summary>
/// Where the log begins once archived events were removed from it (ArchivedEventRemoval): replay reads of earlier
/// instants answer ARCHIVE_REQUIRED, naming the archive that holds them, instead of a fold of what is left; the
/// checkpoint rebuild starts from the cut and the audit chain rebuild from the archive's head.
/// </summary>
public sealed class ArchiveBoundary(IDocumentStore store, KraudDatabase database)
{
    /// <summary>The archive of the latest removal, or null while the log holds every event.</summary>
    public async Task<EventArchiveRecord?> LatestRemovalAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        return await session.Query<EventArchiveRecord>().Where(a => a.RemovedUpToSeq > 0).OrderByDescending(a => a.RemovedUpToSeq).FirstOrDefaultAsync(ct);
    }

    /// <summary>The checkpoint a rebuild of the platform checkpoints starts from: 0, or the latest removal's cut.</summary>
    public async Task<long> CheckpointFloorAsync(CancellationToken ct) => (await LatestRemovalAsync(ct))?.RemovedUpToSeq ?? 0;

    /// <summary>The head a rebuild of the audit chain starts from: genesis, or the latest removal's archive head.</summary>
    public async Task<AuditChainHead?> ChainStartAsync(CancellationToken ct) => await LatestRemovalAsync(ct) is { } removal
        ? new AuditChainHead { LastEntry = removal.Id, LastEventSeq = removal.ToSeq, Hash = removal.HeadHash, RecentCommands = [.. removal.RecentCommands] }
        : null;

    /// <summary>An instant's read (platformAt, pod or volume asOf) needs every event up to it: refused before the boundary.</summary>
    public async Task RequireAtAsync(DateTimeOffset at, string what, CancellationToken ct)
    {
        if (await LatestRemovalAsync(ct) is { RemovedBefore: { } before } removal && at < before)
            throw await RefusalAsync(removal, before, at, what, ct);
    }

    /// <summary>
    /// A window's read (incident, a timeline from an instant) needs the events in it: refused when it starts at or before
    /// the boundary (events of that very instant may be gone).
    /// </summary>
    public async Task RequireFromAsync(DateTimeOffset from, string what, CancellationToken ct)
    {
        if (await LatestRemovalAsync(ct) is { RemovedBefore: { } before } removal && from <= before)
            throw await RefusalAsync(removal, before, from, what, ct);
    }

    /// <summary>
    /// Where a timeline without a start begins: with its stream (null) while the log holds all of it, and just after the
    /// boundary for a stream that began before it. The stream's own events are still there, but what they caused may have
    /// left with ended streams, and a window that starts after the boundary is whole; the archives that hold the rest are
    /// named by <see cref="ArchivesOfAsync"/>. A stream all of whose events left the log has nothing to answer: refused.
    /// </summary>
    /// <param name="viewer">A tenant asking: a stream that is not its own is neither cut nor refused (the read then answers
    /// what it answers for an id it does not know), or the answer would tell it that the id exists.</param>
    public async Task<DateTimeOffset?> TimelineStartAsync(Guid stream, Guid? viewer, string what, CancellationToken ct)
    {
        if (await LatestRemovalAsync(ct) is not { RemovedBefore: { } before } removal) return null;
        var start = await StreamStartAsync(stream, ct);
        if (start > before || !await VisibleAsync(stream, viewer, ct)) return null;
        if (start == DateTimeOffset.MinValue) throw await RefusalAsync(removal, before, null, what, ct);
        return After(before);
    }

    /// <summary>
    /// The archives that hold what a timeline from <paramref name="from"/> (without it: from the stream's first event)
    /// cannot answer because it left the log: every archive up to the latest removal whose head is not older than that
    /// start. None while the log answers the whole window, and none for a stream the viewer does not see.
    /// </summary>
    public async Task<IReadOnlyList<EventArchiveRecord>> ArchivesOfAsync(Guid stream, DateTimeOffset? from, Guid? viewer, CancellationToken ct)
    {
        if (await LatestRemovalAsync(ct) is not { RemovedBefore: { } before } removal) return [];
        if (!await VisibleAsync(stream, viewer, ct)) return [];
        DateTimeOffset? start = from ?? await StreamStartAsync(stream, ct);
        if (start == DateTimeOffset.MinValue) start = await FirstAuditedAsync(stream, ct);
        if (start > before) return [];
        await using var session = store.QuerySession();
        // One record per archive: few.
        var archives = await session.Query<EventArchiveRecord>().Where(a => a.Id <= removal.Id).OrderBy(a => a.Id).ToListAsync(ct);
        return start is { } instant ? archives.Where(a => a.Boundary >= instant).ToList() : archives;
    }

    /// <summary>The first instant after the boundary that the log still answers whole: PostgreSQL keeps microseconds.</summary>
    public static DateTimeOffset After(DateTimeOffset boundary) => boundary.AddTicks(TimeSpan.TicksPerMicrosecond);

    /// <summary>When a stream's first audit entry was made: its audit entries stay when its events leave the log.</summary>
    private async Task<DateTimeOffset?> FirstAuditedAsync(Guid id, CancellationToken ct)
    {
        await using var session = store.QuerySession();
        return (await session.Query<AuditEntry>().Where(e => e.ResourceId == id).OrderBy(e => e.Id).FirstOrDefaultAsync(ct))?.At;
    }

    /// <summary>
    /// Whether the stream is the viewer's (always, for an operator or auditor): told by its audit entries, which stay when
    /// its events leave the log.
    /// </summary>
    private async Task<bool> VisibleAsync(Guid id, Guid? viewer, CancellationToken ct)
    {
        if (viewer is null) return true;
        await using var session = store.QuerySession();
        var entry = await session.Query<AuditEntry>().Where(e => e.ResourceId == id).FirstOrDefaultAsync(ct);
        return entry is not null && entry.TenantId == viewer;
    }

    /// <summary>
    /// When a stream began (when it was created, not its first row: a compacted stream begins with a snapshot that stands
    /// for a later event); <see cref="DateTimeOffset.MinValue"/> when all its events
    /// were removed (a stream that ended before the cut), and <see cref="DateTimeOffset.MaxValue"/> when there is no such stream.
    /// </summary>
    private async Task<DateTimeOffset?> StreamStartAsync(Guid id, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"""
            select exists (select 1 from {KraudDatabase.Schema}.mt_streams where id = @id),
                   (select least(s.created, (select timestamp from {KraudDatabase.Schema}.mt_events where stream_id = @id order by version limit 1))
                    from {KraudDatabase.Schema}.mt_streams s where s.id = @id and exists (select 1 from {KraudDatabase.Schema}.mt_events where stream_id = @id))
            """, connection);
        cmd.Parameters.AddWithValue("id", id);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        if (!reader.GetBoolean(0)) return DateTimeOffset.MaxValue;
        return reader.IsDBNull(1) ? DateTimeOffset.MinValue : reader.GetFieldValue<DateTimeOffset>(1);
    }

    /// <summary>A stream whose events were all removed: asked of as it is now, its history is in an archive too.</summary>
    public async Task RequireStreamAsync(Guid id, Guid? viewer, string what, CancellationToken ct)
    {
        if (await LatestRemovalAsync(ct) is not { RemovedBefore: { } before } removal) return;
        if (await StreamStartAsync(id, ct) == DateTimeOffset.MinValue && await VisibleAsync(id, viewer, ct))
            throw await RefusalAsync(removal, before, null, what, ct);
    }

    /// <summary>pod(asOf:) and volume(asOf:): the instant must be after the boundary, and the stream must have events left.</summary>
    public static async Task RequireStreamAtAsync(GraphQL.IResolveFieldContext ctx, Guid id, DateTime asOf, string kind)
    {
        var boundary = ctx.Service<ArchiveBoundary>();
        var at = new DateTimeOffset(DateTime.SpecifyKind(asOf, DateTimeKind.Utc));
        await boundary.RequireAtAsync(at, $"{kind} {id} as of {at.UtcDateTime:O}", ctx.CancellationToken);
        await boundary.RequireStreamAsync(id, ctx.Caller().Principal.TenantId, $"{kind} {id} (its stream ended before the boundary and left the log)",
            ctx.CancellationToken);
    }

    private async Task<DomainException> RefusalAsync(EventArchiveRecord removal, DateTimeOffset before, DateTimeOffset? at, string what, CancellationToken ct)
    {
        // The archive that holds an instant is the first whose head is not older than it.
        await using var session = store.QuerySession();
        // One record per archive: few, and all of them are counted for a refusal that cannot tell the instant.
        var archives = await session.Query<EventArchiveRecord>().Where(a => a.Id <= removal.Id).OrderBy(a => a.Id).ToListAsync(ct);
        var holder = at is { } instant ? archives.FirstOrDefault(a => a.Boundary >= instant) ?? removal : removal;
        return new DomainException(ErrorCode.ArchiveRequired,
            $"{what} reaches before {before.UtcDateTime:O}: the events up to there (event {removal.RemovedUpToSeq}) left the log after they were archived. " +
            $"They are in archive {holder.File} (events {holder.FromSeq}–{holder.ToSeq}, audit entries {holder.FromEntry}–{holder.Id}; " +
            (at is null && archives.Count > 1 ? $"or in one of the {archives.Count - 1} archives before it; " : "") +
            "`kraud audit verify-archive FILE` proves it); ask the log for instants after that.");
    }
}
