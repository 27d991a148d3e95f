using Kraud.Api.Common;
using Npgsql;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// What the clusters' Kubernetes API reads of the event log itself: a list's resourceVersion and the newest event of each
/// stream a list is made of. One per application: it keeps the newest head it found, so that a list's version never goes
/// back on this node.
/// </summary>
public sealed class KubeLog(KraudDatabase database)
{
    private readonly Lock _settledLock = new();
    private (long Seq, Guid Id) _settledHead;

    /// <summary>
    /// The newest sequence number below which no event can still appear: a list's resourceVersion. A transaction takes
    /// its numbers when it appends and shows them when it commits, so a later number can show before an earlier one; a
    /// watch from a version past such a gap would never see the earlier event. A gap is passed when no other transaction
    /// holds the event sequence (nextval locks it until the transaction ends, so none can still fill the gap: it was rolled
    /// back). While one does, the head stops before the first gap above both the async daemon's high-water mark (which
    /// skips a rolled-back gap only after seconds) and the newest head found before (what was settled stays settled, so a
    /// list's version never goes back).
    /// </summary>
    public async Task<long> HeadAsync(CancellationToken ct)
    {
        var schema = KraudDatabase.Schema;
        var floor = Settled;
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        long top, beforeGap;
        Guid? topId, beforeGapId;
        bool floorValid;
        // The settled head counts only while its event is still there (not after the event store is reset).
        await using (var read = new NpgsqlCommand($"""
            with top as (select coalesce(max(seq_id), 0) as head from {schema}.mt_events),
                 mark as (select greatest(coalesce((select last_seq_id from {schema}.mt_event_progression where name = 'HighWaterMark'), 0),
                                          (select head from top) - 10000,
                                          (select seq_id from {schema}.mt_events where seq_id = @settled and id = @settledId)) as passed),
                 valid as (select exists (select 1 from {schema}.mt_events where seq_id = @settled and id = @settledId) as settled),
                 gap as (select coalesce((select min(s) - 1 from generate_series((select passed from mark) + 1, (select head from top)) s
                                          where not exists (select 1 from {schema}.mt_events e where e.seq_id = s)),
                                         (select head from top)) as before)
            select (select head from top), (select id from {schema}.mt_events where seq_id = (select head from top)),
                   (select before from gap), (select id from {schema}.mt_events where seq_id = (select before from gap)),
                   (select settled from valid)
            """, connection))
        {
            read.Parameters.AddWithValue("settled", floor.Seq);
            read.Parameters.AddWithValue("settledId", floor.Id);
            await using var reader = await read.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            (top, topId, beforeGap, beforeGapId) = (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetGuid(1),
                reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetGuid(3));
            floorValid = reader.GetBoolean(4);
        }
        if (beforeGap != top)
        {
            // Asked after the gaps were read: whoever took a gap's number took it before the newest visible event's, so it either
            // still holds the sequence now, or it has ended (rolled back, or committed: its events are in what is read next).
            await using var holders = new NpgsqlCommand($"""
                select exists (select 1 from pg_locks where locktype = 'relation' and relation = '{schema}.mt_events_sequence'::regclass
                                                        and pid <> pg_backend_pid())
                """, connection);
            if ((bool)(await holders.ExecuteScalarAsync(ct))!) (top, topId) = (beforeGap, beforeGapId);
        }
        if (topId is { } id) Settle((top, id), floorValid ? null : floor);
        return top;
    }

    /// <summary>The newest head found (and its event's id): no number at or below it can still appear.</summary>
    private (long Seq, Guid Id) Settled
    {
        get { lock (_settledLock) return _settledHead; }
    }

    /// <summary>Keeps the newer head (concurrent lists may find theirs in any order), or replaces one whose event is gone.</summary>
    private void Settle((long Seq, Guid Id) head, (long Seq, Guid Id)? gone)
    {
        lock (_settledLock)
            if (head.Seq > _settledHead.Seq || _settledHead == gone) _settledHead = head;
    }

    /// <summary>Each stream's newest sequence number, and whether an object of any cluster was deleted past the head.</summary>
    public async Task<(Dictionary<Guid, long> Seqs, bool DeletedPastHead)> SequencesAsync(Guid[] streams, long head, CancellationToken ct)
    {
        var result = new Dictionary<Guid, long>();
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"""
            select stream_id, max(seq_id) from {KraudDatabase.Schema}.mt_events where stream_id = any(@ids) group by stream_id
            union all
            select null, max(seq_id) from {KraudDatabase.Schema}.mt_events where seq_id > @head and type = 'kube_object_deleted'
            """, connection);
        cmd.Parameters.AddWithValue("ids", streams);
        cmd.Parameters.AddWithValue("head", head);
        var deleted = false;
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            if (!reader.IsDBNull(0)) result[reader.GetGuid(0)] = reader.GetInt64(1);
            else deleted |= !reader.IsDBNull(1);
        }
        return (result, deleted);
    }
}
