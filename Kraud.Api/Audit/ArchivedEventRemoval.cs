using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Kraud.Projections.Replay;
using Marten;
using Npgsql;

namespace Kraud.Api.Audit;

/// <summary>
/// Removes archived events from the log once their archive is written and verified (EventArchiver). The events of
/// streams that had ended by the cut leave, with the inline views of those resources (PodView, VolumeView, IngressView);
/// a live host, pod, volume or ingress keeps its stream, with its events up to
/// the cut replaced by a snapshot of the state they fold to (LiveStreamCompaction). The cut is the last checkpoint of the platform
/// projection in the archive: its states are where every replay after the cut starts, so the removed events are never
/// needed again, and reads of earlier instants answer ARCHIVE_REQUIRED (ArchiveBoundary) from the moment the record
/// says so, before the first event goes.
/// </summary>
public sealed class ArchivedEventRemoval(IDocumentStore store, KraudDatabase database, PlatformCheckpoints checkpoints, LiveStreamCompaction compaction,
    ILogger<ArchivedEventRemoval> logger)
{
    /// <summary>
    /// Sequence numbers per delete: each delete is a short transaction of its own that locks only the rows it removes
    /// (which nobody writes any more), so appends and reads go on beside it.
    /// </summary>
    public const int BatchSeqs = 10_000;

    /// <param name="verifiedIn">How long proving the file took (the caller's part), for the log line that says where the time went.</param>
    public async Task RemoveAsync(EventArchiveRecord record, TimeSpan verifiedIn, CancellationToken ct)
    {
        var schema = KraudDatabase.Schema;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var session = store.QuerySession();
        var previousCut = await session.Query<EventArchiveRecord>().Where(a => a.RemovedUpToSeq > 0 && a.Id != record.Id).OrderByDescending(a => a.RemovedUpToSeq)
            .Select(a => a.RemovedUpToSeq).FirstOrDefaultAsync(ct);
        // A removal that stopped half-way goes on at its own cut.
        var cut = record is { RemovedUpToSeq: > 0, RemovedBefore: { } removedBefore }
            ? new Checkpoint(record.RemovedUpToSeq, removedBefore)
            : await checkpoints.LatestAtOrBeforeAsync(record.ToSeq, ct);
        if (cut is null || cut.Seq <= previousCut)
            throw new DomainException(ErrorCode.Precondition,
                $"Archive {record.File} was written, but no events were removed: no checkpoint of the platform projection lies between event " +
                $"{previousCut} (the last removal) and event {record.ToSeq} (the archive's end). Checkpoints are written every Replay:CheckpointEveryEvents " +
                "events; archive up to a later instant.");

        // Reads refuse earlier instants from here on: none can see a log with some of the events gone.
        record.RemovedUpToSeq = cut.Seq;
        record.RemovedBefore = cut.MaxAt;
        await using (var write = store.LightweightSession())
        {
            write.Store(record);
            await write.SaveChangesAsync(ct);
        }

        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        // Ended by the cut: a stream the platform projection folds (its first event starts one, or is the snapshot an earlier
        // removal compacted it to) that the checkpoint at the
        // cut no longer holds (a deleted pod, volume or ingress), and that has no event after the cut. Its row in
        // mt_streams stays: the stream's version, so an append to it still meets the version check. The deletes go from
        // the cut down, so a removal that stopped half-way left every such stream its first event, and finds it again.
        await ExecuteAsync(connection, $"""
            drop table if exists pg_temp.ended_streams;
            create temp table ended_streams (id uuid primary key);
            insert into ended_streams
            select s.id from {schema}.mt_streams s
            join {schema}.mt_events f on f.stream_id = s.id and f.seq_id <= @cut
              and ((f.version = 1 and f.type = any(@starts)) or f.type = any(@snapshots))
            where not exists (select 1 from {schema}.mt_events l where l.stream_id = s.id and l.seq_id > @cut)
              and not exists (select 1 from {checkpoints.StatesTable} r where r.id = s.id and r.valid @> @cut)
            on conflict do nothing;
            analyze ended_streams;
            """, ct, ("cut", cut.Seq), ("starts", LiveStreamCompaction.StartTypes()), ("snapshots", compaction.SnapshotTypes()));
        var from = await ScalarAsync(connection, $"select coalesce(min(seq_id), 0) from {schema}.mt_events where stream_id in (select id from ended_streams)", ct);
        var selected = clock.Elapsed;
        // A stream's view leaves in the statement that deletes the stream's first event (its start, or the snapshot an
        // earlier removal compacted it to): the deletes go from the cut down, so that is the stream's last event to go,
        // and a removal that stopped half-way finds the stream, and its view, again. Afterwards the resource is absent
        // (a rebuild of the view from the log would not make it either); reads of it before the cut need the archive.
        var views = compaction.PlatformViews();
        var deleteViews = string.Concat(views.Select((v, i) =>
            $", view{i} as (delete from {v.Table} where id in (select stream_id from gone where type = any(@firsts{i})))"));
        long removed = 0;
        for (var high = cut.Seq; from > 0 && high >= from; high -= BatchSeqs)
        {
            var low = Math.Max(from - 1, high - BatchSeqs);
            await using var delete = new NpgsqlCommand($"""
                with gone as (delete from {schema}.mt_events where seq_id > @low and seq_id <= @high and stream_id in (select id from ended_streams)
                              returning stream_id, type){deleteViews}
                select count(*) from gone
                """, connection)
            { CommandTimeout = 0 };
            delete.Parameters.AddWithValue("low", low);
            delete.Parameters.AddWithValue("high", high);
            for (var i = 0; i < views.Count; i++) delete.Parameters.AddWithValue($"firsts{i}", views[i].FirstTypes);
            removed += Convert.ToInt64(await delete.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        }
        var deleted = clock.Elapsed;
        // Only now: a removal that stopped before this point finds the same ended streams again, and one that stopped
        // during it finds the streams not yet compacted (a compacted one has a single event up to the cut).
        var compactedOrGone = await compaction.CompactAsync(connection, cut.Seq, ct);
        var compacted = clock.Elapsed;
        // Checkpoints before the cut can only serve reads that are refused now.
        await checkpoints.PruneBeforeAsync(cut.Seq, ct);
        var pruned = clock.Elapsed;

        record.RemovedEvents += removed + compactedOrGone.RemovedEvents;
        record.CompactedEvents += compactedOrGone.Events;
        record.RemovalFinished = true;
        await using (var write = store.LightweightSession())
        {
            write.Store(record);
            await write.SaveChangesAsync(ct);
        }
        logger.LogWarning("Removed {Events} archived events of ended streams up to event {Cut} (archive {File}) and compacted {Streams} live streams " +
                          "({Compacted} events replaced by snapshots), removed {Gone} deleted apps, clusters and Kubernetes objects ({GoneEvents} events); " +
                          "reads before {Before:O} need the archive. Verify the file {Verify:F1} s, " +
                          "find the ended streams {Select:F1} s, delete {Delete:F1} s, compact {Compact:F1} s, prune checkpoints {Prune:F1} s",
            removed, cut.Seq, record.File, compactedOrGone.Streams, compactedOrGone.Events, compactedOrGone.RemovedStreams, compactedOrGone.RemovedEvents, cut.MaxAt,
            verifiedIn.TotalSeconds, selected.TotalSeconds,
            (deleted - selected).TotalSeconds, (compacted - deleted).TotalSeconds, (pruned - compacted).TotalSeconds);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct, params (string Name, object Value)[] parameters)
    {
        await using var cmd = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    private static async Task<long> ScalarAsync(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
    }
}
