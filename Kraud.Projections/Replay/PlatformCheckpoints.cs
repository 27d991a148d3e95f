using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using JasperFx.Events;
using Kraud.Domain.Common;
using Marten;
using Npgsql;
using NpgsqlTypes;

namespace Kraud.Projections.Replay;

/// <summary>A checkpoint: the platform state after every event up to Seq, and the time span of the events it covers.</summary>
public sealed record Checkpoint(long Seq, DateTimeOffset MaxAt);

/// <summary>
/// Checkpoints of the platform projection, kept in PostgreSQL. A resource's state is stored once per checkpoint at which
/// it had changed, valid for the range of checkpoint sequence numbers until it changed again or went, so a checkpoint
/// costs what changed since the previous one and reading one costs what the platform held then (a GiST index on the
/// range finds the rows valid at a checkpoint).
///
/// Event timestamps are commit-transaction times and need not grow with the sequence, so a replay to an instant can use
/// a checkpoint only when every event it covers is at or before the instant (its MaxAt), and must then read the
/// events after it that are at or before the instant: those of each later interval whose earliest event (MinAt) is
/// not after the instant, and the events after the last checkpoint.
/// </summary>
public sealed class PlatformCheckpoints(IDocumentStore store, string connectionString, string schema)
{
    private string Checkpoints => $"{schema}.replay_checkpoints";

    public PlatformEventReader Reader { get; } = new(store, connectionString, schema);

    /// <summary>
    /// States are stored without their computed properties (a pod's State, Live, Unplaced…): they are not read back,
    /// and they made a checkpoint about twice as large.
    /// </summary>
    /// <remarks>
    /// Each state is stored as its JSON compressed with Brotli (bytea), not as jsonb: nothing queries inside a state,
    /// and a checkpoint is read whole on every replay. As jsonb a platform of 5,000 pods was 7.5 MB to read per replay
    /// (1.5 KB a pod, spread over about a thousand heap pages and converted to text by the server); compressed it is a
    /// fraction of that, and the client decompresses and parses it from UTF-8 without a string in between.
    /// </remarks>
    private static readonly JsonSerializerOptions StateJson = new() { IgnoreReadOnlyProperties = true, Converters = { new JsonStringEnumConverter() } };
    private string States => $"{schema}.replay_states";

    public async Task EnsureSchemaAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        // Checkpoints are derived from the log: one stored in the first format (state jsonb) is dropped, and the
        // writer, finding none, folds them again from event 0.
        await ExecuteAsync(connection, $"""
            create schema if not exists {schema};
            do $$ begin
              if exists (select 1 from information_schema.columns where table_schema = '{schema}' and table_name = 'replay_states'
                         and column_name = 'state' and data_type <> 'bytea') then
                drop table if exists {States};
                truncate {Checkpoints};
              end if;
            end $$;
            create table if not exists {Checkpoints} (
              seq bigint primary key, min_at timestamptz not null, max_at timestamptz not null, events bigint not null,
              resources int not null, written_at timestamptz not null default now());
            create table if not exists {States} (
              id uuid not null, kind "char" not null, version int not null, valid int8range not null, state bytea not null);
            create index if not exists replay_states_valid on {States} using gist (valid);
            create index if not exists replay_states_id on {States} (id);
            """, ct);
    }

    /// <summary>The table of the states (archived events are removed only from streams it no longer holds at the cut).</summary>
    public string StatesTable => States;

    /// <summary>
    /// Forgets every checkpoint after <paramref name="floor"/> (a rebuild starts from it): 0 when the log holds every
    /// event, otherwise the cut up to which archived events were removed, whose states are the only way past it.
    /// </summary>
    public async Task ClearAsync(long floor, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        if (floor == 0)
        {
            await ExecuteAsync(connection, $"truncate {Checkpoints}, {States}", ct);
            return;
        }
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using var cmd = new NpgsqlCommand($"""
            delete from {Checkpoints} where seq > @floor;
            delete from {States} where lower(valid) > @floor;
            update {States} set valid = int8range(lower(valid), null) where valid @> @floor and not upper_inf(valid);
            """, connection, tx);
        cmd.Parameters.AddWithValue("floor", floor);
        await cmd.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>The latest checkpoint at or before <paramref name="seq"/>, if any.</summary>
    public async Task<Checkpoint?> LatestAtOrBeforeAsync(long seq, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"select seq, max_at from {Checkpoints} where seq <= @seq order by seq desc limit 1", connection);
        cmd.Parameters.AddWithValue("seq", seq);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? new Checkpoint(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1)) : null;
    }

    /// <summary>Forgets the checkpoints before <paramref name="seq"/> and the states no checkpoint from it on holds.</summary>
    public async Task PruneBeforeAsync(long seq, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"""
            delete from {Checkpoints} where seq < @seq;
            delete from {States} where not upper_inf(valid) and upper(valid) <= @seq;
            """, connection) { CommandTimeout = 0 };
        cmd.Parameters.AddWithValue("seq", seq);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    public async Task<Checkpoint?> LatestAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"select seq, max_at from {Checkpoints} order by seq desc limit 1", connection);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? new Checkpoint(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1)) : null;
    }

    /// <summary>
    /// Writes the checkpoint at <paramref name="seq"/>: closes the rows of every resource that changed or went since the
    /// previous one and stores the new state of those still there, in one transaction with the checkpoint's row.
    /// </summary>
    public async Task WriteAsync(PlatformState state, long seq, DateTimeOffset minAt, DateTimeOffset maxAt, long events, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var changed = state.Changed.ToArray();
        await using (var close = new NpgsqlCommand($"update {States} set valid = int8range(lower(valid), @seq) where id = any(@ids) and upper_inf(valid)", connection, tx))
        {
            close.Parameters.AddWithValue("seq", seq);
            close.Parameters.AddWithValue("ids", changed);
            await close.ExecuteNonQueryAsync(ct);
        }
        await using (var copy = await connection.BeginBinaryImportAsync($"copy {States} (id, kind, version, valid, state) from stdin (format binary)", ct))
        {
            foreach (var id in changed)
            {
                if (state.Resource(id) is not { } resource) continue;
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(id, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync((char)resource.Kind, NpgsqlDbType.InternalChar, ct);
                await copy.WriteAsync(resource.Version, NpgsqlDbType.Integer, ct);
                await copy.WriteAsync(new NpgsqlRange<long>(seq, true, false, 0, false, true), NpgsqlDbType.Range | NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(Compress(resource.State, resource.Kind), NpgsqlDbType.Bytea, ct);
            }
            await copy.CompleteAsync(ct);
        }
        await using (var row = new NpgsqlCommand(
                         $"insert into {Checkpoints} (seq, min_at, max_at, events, resources) values (@seq, @min, @max, @events, @resources)",
                         connection, tx))
        {
            row.Parameters.AddWithValue("seq", seq);
            row.Parameters.AddWithValue("min", minAt);
            row.Parameters.AddWithValue("max", maxAt);
            row.Parameters.AddWithValue("events", events);
            // The rows valid at seq are exactly the resources the state holds (counting them in SQL read every one).
            row.Parameters.AddWithValue("resources", state.Count);
            await row.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
        state.Changed.Clear();
    }

    /// <summary>The platform state stored with the checkpoint at <paramref name="seq"/> (empty for 0: before any event).</summary>
    public async Task<PlatformState> LoadAsync(long seq, CancellationToken ct)
    {
        var state = new PlatformState();
        if (seq == 0) return state;
        var rows = new List<(Guid Id, ResourceKind Kind, int Version, byte[] State)>();
        await using (var connection = await OpenAsync(ct))
        {
            await using var cmd = new NpgsqlCommand($"select id, kind, version, state from {States} where valid @> @seq", connection);
            cmd.Parameters.AddWithValue("seq", seq);
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
                rows.Add((reader.GetGuid(0), (ResourceKind)reader.GetChar(1), reader.GetInt32(2), reader.GetFieldValue<byte[]>(3)));
        }
        // Decompressing and parsing thousands of states is most of a replay's CPU: spread it over the cores.
        var states = new object[rows.Count];
        Parallel.For(0, rows.Count, new ParallelOptions { CancellationToken = ct }, i => states[i] = Decompress(rows[i].State, rows[i].Kind));
        for (var i = 0; i < rows.Count; i++) state.Restore(rows[i].Id, rows[i].Kind, states[i], rows[i].Version);
        return state;
    }

    /// <summary>
    /// One resource as the checkpoint at <paramref name="seq"/> stored it, or null when it did not exist then (not yet,
    /// or gone).
    /// </summary>
    public async Task<(object State, int Version)?> LoadResourceAsync(Guid id, long seq, CancellationToken ct)
    {
        if (seq == 0) return null;
        await using var connection = await OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"select kind, version, state from {States} where id = @id and valid @> @seq", connection);
        cmd.Parameters.AddWithValue("id", id);
        cmd.Parameters.AddWithValue("seq", seq);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct)) return null;
        return (Decompress(reader.GetFieldValue<byte[]>(2), (ResourceKind)reader.GetChar(0)), reader.GetInt32(1));
    }

    private static byte[] Compress(object state, ResourceKind kind)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(state, PlatformState.TypeOf(kind), StateJson);
        var buffer = new byte[BrotliEncoder.GetMaxCompressedLength(json.Length)];
        // Quality 1: most of the size gone (the states repeat their property names) for little CPU; window 22 as usual.
        if (!BrotliEncoder.TryCompress(json, buffer, out var written, quality: 1, window: 22))
            throw new InvalidOperationException("A checkpoint state did not fit Brotli's own bound.");
        return buffer[..written];
    }

    private static object Decompress(byte[] stored, ResourceKind kind)
    {
        using var brotli = new BrotliStream(new MemoryStream(stored), CompressionMode.Decompress);
        return JsonSerializer.Deserialize(brotli, PlatformState.TypeOf(kind), StateJson)!;
    }

    /// <summary>
    /// Where a replay of the events committed in [from, to] starts and which sequence numbers it must read:
    /// Start is the latest checkpoint all of whose events are before from (or at or before it when
    /// <paramref name="includeFrom"/> is false: the replay then starts from the checkpoint's state), ReadTo the end of the
    /// last checkpoint interval holding an event at or before to, and Tail the last checkpoint (events after it are
    /// always read).
    /// </summary>
    public async Task<SeqWindow> WindowAsync(DateTimeOffset? from, DateTimeOffset to, bool includeFrom, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"""
            select coalesce((select max(seq) from {Checkpoints} where @from is not null and (max_at < @from or (not @incl and max_at <= @from))), 0),
                   coalesce((select max(seq) from {Checkpoints} where min_at <= @to), 0),
                   coalesce((select max(seq) from {Checkpoints}), 0)
            """, connection);
        cmd.Parameters.Add(new NpgsqlParameter<DateTimeOffset?>("from", NpgsqlDbType.TimestampTz) { TypedValue = from });
        cmd.Parameters.AddWithValue("to", to);
        cmd.Parameters.AddWithValue("incl", includeFrom);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return new SeqWindow(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }

    /// <summary>The platform as it was at <paramref name="asOf"/>: the nearest usable checkpoint plus the events after it up to then.</summary>
    public async Task<PlatformState> AtAsync(DateTimeOffset asOf, CancellationToken ct)
    {
        var window = await WindowAsync(asOf, asOf, includeFrom: false, ct);
        var state = await LoadAsync(window.Start, ct);
        var events = Reader.ReadAsync("seq_id > @start and (seq_id <= @readTo or seq_id > @tail) and timestamp <= @to",
            new Dictionary<string, object> { ["start"] = window.Start, ["readTo"] = window.ReadTo, ["tail"] = window.Tail, ["to"] = asOf }, state, ct);
        await foreach (var e in events)
            if (e.Data is not null) state.Apply(e.StreamId, e.Data);
        return state;
    }

    /// <summary>
    /// One pod's or volume's stream folded up to <paramref name="asOf"/> (time travel): its state in the nearest usable
    /// checkpoint plus its later events, or, when that checkpoint does not hold it, its stream from the start.
    /// </summary>
    public async Task<(T State, int Version)> StreamAtAsync<T>(Guid id, DateTimeOffset asOf, CancellationToken ct) where T : IState<T>
    {
        var window = await WindowAsync(asOf, asOf, includeFrom: false, ct);
        var stored = await LoadResourceAsync(id, window.Start, ct);
        var (state, version, after) = stored is ({ } s, var v) && s is T known ? (known, v, window.Start) : (T.Initial, 0, 0L);
        await using var session = store.QuerySession();
        await foreach (var e in session.Events.QueryAllRawEvents()
                           .Where(e => e.StreamId == id && e.Sequence > after && e.Timestamp <= asOf).OrderBy(e => e.Sequence).ToAsyncEnumerable(ct))
        {
            state = state.Evolve(e.Data);
            version++;
        }
        return (state, version);
    }

    /// <summary>The reference: the platform at <paramref name="asOf"/> folded from event 0, with no checkpoint. Slow by design.</summary>
    public async Task<PlatformState> FoldFromStartAsync(DateTimeOffset asOf, CancellationToken ct)
    {
        var state = new PlatformState();
        await using var session = store.QuerySession();
        await foreach (var e in session.Events.QueryAllRawEvents().Where(e => e.Timestamp <= asOf).OrderBy(e => e.Sequence).ToAsyncEnumerable(ct))
            state.Apply(e.StreamId, e.Data);
        return state;
    }

    private async Task<NpgsqlConnection> OpenAsync(CancellationToken ct)
    {
        var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        return connection;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, connection);
        await cmd.ExecuteNonQueryAsync(ct);
    }
}

/// <summary>The sequence numbers a replay reads: (Start, ReadTo] and everything after Tail.</summary>
public sealed record SeqWindow(long Start, long ReadTo, long Tail);
