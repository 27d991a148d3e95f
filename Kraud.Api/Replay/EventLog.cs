using System.Text.Json;
using Kraud.Api.Common;
using Kraud.Projections.Audit;
using Kraud.Projections.Replay;
using Npgsql;

namespace Kraud.Api.Replay;

/// <summary>One event as incident reviews see it: where it sits in the log, what it says, who caused it and through what.</summary>
public sealed record EventRecord(long Seq, DateTime At, Guid StreamId, int Version, string Type, JsonElement Data, string? Actor,
    string? CorrelationId, string? CausationId)
{
    internal string? Tenant { get; init; }
}

/// <summary>
/// Reads the event log directly (SQL over Marten's mt_events): timelines follow correlation ids across streams, which
/// Marten's LINQ over raw events does not offer.
/// </summary>
public sealed class EventLog(KraudDatabase database, PlatformCheckpointer checkpointer)
{
    private const string Columns =
        "seq_id, timestamp, stream_id, version, type, data::text, headers ->> '" + AuditHeaders.Actor + "', headers ->> '" + AuditHeaders.Tenant +
        "', correlation_id, causation_id";

    /// <summary>
    /// The events of one stream in a window, and every event that shares a correlation id with them (what they caused or
    /// were caused with). A window that ends reads only the sequence numbers the checkpoints say can hold its events,
    /// instead of the whole log.
    /// </summary>
    public async Task<IReadOnlyList<EventRecord>> CausalClosureAsync(Guid streamId, DateTimeOffset? from, DateTimeOffset? to, CancellationToken ct)
    {
        var window = to is { } end ? await checkpointer.Checkpoints.WindowAsync(from, end, includeFrom: true, ct) : new SeqWindow(0, long.MaxValue, 0);
        var sql = $"""
            with own as (
              select seq_id, correlation_id from {KraudDatabase.Schema}.mt_events
              where stream_id = @stream and (@from is null or timestamp >= @from) and (@to is null or timestamp <= @to))
            select {Columns} from {KraudDatabase.Schema}.mt_events e
            where (e.stream_id = @stream or e.correlation_id in (select correlation_id from own where correlation_id is not null))
              and (@from is null or e.timestamp >= @from) and (@to is null or e.timestamp <= @to)
              and e.seq_id > @start and (e.seq_id <= @readTo or e.seq_id > @tail)
            order by seq_id
            """;
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(sql, connection);
        cmd.Parameters.AddWithValue("stream", streamId);
        cmd.Parameters.AddWithValue("start", window.Start);
        cmd.Parameters.AddWithValue("readTo", window.ReadTo);
        cmd.Parameters.AddWithValue("tail", window.Tail);
        cmd.Parameters.Add(new NpgsqlParameter<DateTimeOffset?>("from", NpgsqlTypes.NpgsqlDbType.TimestampTz) { TypedValue = from });
        cmd.Parameters.Add(new NpgsqlParameter<DateTimeOffset?>("to", NpgsqlTypes.NpgsqlDbType.TimestampTz) { TypedValue = to });
        var events = new List<EventRecord>();
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            using var data = JsonDocument.Parse(reader.GetString(5));
            events.Add(new EventRecord(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1).UtcDateTime, reader.GetGuid(2), (int)reader.GetInt64(3),
                reader.GetString(4), data.RootElement.Clone(), Text(reader, 6), Text(reader, 8), Text(reader, 9))
            { Tenant = Text(reader, 7) });
        }
        return events;
    }

    private static string? Text(NpgsqlDataReader reader, int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
}
