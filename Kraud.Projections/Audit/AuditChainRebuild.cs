using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Kraud.Projections.Common;
using Marten;
using Npgsql;
using NpgsqlTypes;

namespace Kraud.Projections.Audit;

/// <summary>
/// Rebuilds the audit chain from mt_events without the async daemon, at close to the speed PostgreSQL reads the log:
/// one sequential read of the columns the chain is made of (never the event bodies), the chain linked and hashed in a
/// tight loop, and the entries rendered and written by binary COPY on other connections while the next ones are read.
/// The secondary indexes are dropped for the load and made again after it, side by side (one sort each instead of a
/// million inserts).
/// It goes up to <c>upTo</c> (the daemon's high-water mark: nothing below it is still being committed) and leaves the
/// head and the daemon's position there, so the daemon's agent, stopped by the caller for the rebuild, goes on from
/// the next event: the chain is the one a rebuild at rest makes.
/// </summary>
public sealed class AuditChainRebuild(IDocumentStore store, string connectionString, string schema)
{
    private const int ChunkRows = 20_000;
    private const int Writers = 3;
    private const string IndexSortMemory = "1GB";
    private string Entries => $"{schema}.mt_doc_auditentry";

    /// <param name="from">
    /// The head to link on from (an archive's, once events before it left the log): its entries stay and the events at
    /// or before it are not read. Null: from genesis, every entry rewritten.
    /// </param>
    public async Task<AuditChainHead> RunAsync(long upTo, AuditChainHead? from, RebuildProgress progress, CancellationToken ct)
    {
        await store.Storage.Database.EnsureStorageExistsAsync(typeof(AuditEntry), ct);
        await store.Storage.Database.EnsureStorageExistsAsync(typeof(AuditChainHead), ct);
        await using var writer = new NpgsqlConnection(connectionString);
        await writer.OpenAsync(ct);
        progress.Begin(upTo); // sequence numbers, so a little more than the events where transactions rolled back
        var shard = $"{AuditChainProjection.Name}:All";
        var startedAt = await ProgressionAsync(writer, shard, ct);
        await ExecuteAsync(writer, (from is null ? $"truncate {Entries};" : $"delete from {Entries} where id > {from.LastEntry};") +
                                   $"delete from {schema}.mt_doc_auditchainhead where id = '{AuditChainHead.PlatformChain}'", ct);
        var indexes = await SecondaryIndexesAsync(writer, ct);
        foreach (var (name, _) in indexes) await ExecuteAsync(writer, $"drop index if exists {schema}.{name}", ct);
        // The primary key too: three writers copy interleaved ranges of ids, so its index took inserts in the middle of
        // its pages; built after the load it is one sort. The column stays NOT NULL, and the ids are unique (one linker).
        var primaryKey = await PrimaryKeyAsync(writer, ct);
        if (primaryKey is not null) await ExecuteAsync(writer, $"alter table {Entries} drop constraint {primaryKey}", ct);
        var builds = indexes.Select(index => new[] { index.Definition.Replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", StringComparison.Ordinal) }).ToList();
        // A unique index first (reads go on while it is built), then the constraint takes it over at once.
        if (primaryKey is not null)
            builds.Add([$"create unique index if not exists {primaryKey} on {Entries} (id)", $"alter table {Entries} add constraint {primaryKey} primary key using index {primaryKey}"]);
        AuditChainHead head;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            head = await LoadAsync(upTo, from ?? new AuditChainHead(), progress, ct);
            progress.Stage("read, link and copy", clock.Elapsed);
        }
        finally
        {
            clock.Restart();
            // Each index on a connection of its own: one build is one backend (and mostly one core), so they run side by side.
            await Task.WhenAll(builds.Select(async statements =>
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(CancellationToken.None);
                // A sort in memory, not runs merged from temporary files: 5,000,000 events make 6.2 million keys, some
                // 400 MB for the tenant index against the default 64 MB, and the two builds took 28 s of a 147 s
                // rebuild. A rebuild is rare and the memory is given back when the build ends.
                await ExecuteAsync(connection, $"set maintenance_work_mem = '{IndexSortMemory}'", CancellationToken.None);
                foreach (var statement in statements) await ExecuteAsync(connection, statement, CancellationToken.None);
            }));
            progress.Stage("indexes", clock.Elapsed);
        }

        // The head and the daemon's position in one transaction, and only if the daemon's agent (paused) did not move
        // meanwhile: had it, its entries would be mixed with these.
        await using var tx = await writer.BeginTransactionAsync(ct);
        await using (var position = new NpgsqlCommand(startedAt is null
                             ? $"insert into {schema}.mt_event_progression (name, last_seq_id, last_updated) values (@shard, @seq, now()) on conflict (name) do nothing"
                             : $"update {schema}.mt_event_progression set last_seq_id = @seq, last_updated = now() where name = @shard and last_seq_id = @started",
                         writer, tx))
        {
            position.Parameters.AddWithValue("shard", shard);
            position.Parameters.AddWithValue("seq", head.LastEventSeq);
            position.Parameters.AddWithValue("started", startedAt ?? 0);
            if (await position.ExecuteNonQueryAsync(ct) != 1)
                throw new InvalidOperationException($"The daemon's {shard} agent ran during the rebuild; the chain is not trusted.");
        }
        await WriteHeadAsync(writer, tx, head, ct);
        await tx.CommitAsync(ct);
        return head;
    }

    /// <summary>
    /// After a failed rebuild: the chain left at <paramref name="from"/> (its entries up to it, its head, the daemon's
    /// position at its last event) or, when null, the daemon's position at 0, so the daemon's agent links the rest (slow,
    /// but exact). Once archived events left the log, a chain linked again from event 0 would not be the one they proved.
    /// </summary>
    public async Task ResetAsync(AuditChainHead? from, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (from is not null)
        {
            await using (var entries = new NpgsqlCommand($"delete from {Entries} where id > @last", connection, tx))
            {
                entries.Parameters.AddWithValue("last", from.LastEntry);
                await entries.ExecuteNonQueryAsync(ct);
            }
            await WriteHeadAsync(connection, tx, from, ct);
        }
        await using (var position = new NpgsqlCommand($"update {schema}.mt_event_progression set last_seq_id = @seq where name = @shard", connection, tx))
        {
            position.Parameters.AddWithValue("seq", from?.LastEventSeq ?? 0);
            position.Parameters.AddWithValue("shard", $"{AuditChainProjection.Name}:All");
            await position.ExecuteNonQueryAsync(ct);
        }
        await tx.CommitAsync(ct);
    }

    private async Task WriteHeadAsync(NpgsqlConnection connection, NpgsqlTransaction tx, AuditChainHead head, CancellationToken ct)
    {
        await using var headRow = new NpgsqlCommand(
            $"insert into {schema}.mt_doc_auditchainhead (id, data, mt_version, mt_dotnet_type) values (@id, @data, @version, @type) " +
            "on conflict (id) do update set data = excluded.data, mt_version = excluded.mt_version, mt_last_modified = now()", connection, tx);
        headRow.Parameters.AddWithValue("id", head.Id);
        headRow.Parameters.Add(new NpgsqlParameter("data", NpgsqlDbType.Jsonb) { Value = store.Options.Serializer().ToJson(head) });
        headRow.Parameters.AddWithValue("version", Guid.CreateVersion7());
        headRow.Parameters.AddWithValue("type", typeof(AuditChainHead).FullName!);
        await headRow.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// One reader reads, links and hashes the entries (the chain is one sequence); three writers render them as JSON and
    /// copy them in on connections of their own, so PostgreSQL parses one chunk's JSON while the next is read and another
    /// rendered. Rendering on the reader made it the bottleneck: alone it read and linked 129,000 events/s, and with
    /// Marten's serializer rendering too 81,000 (bench … audit, 1,000,000 events).
    /// </summary>
    private async Task<AuditChainHead> LoadAsync(long upTo, AuditChainHead from, RebuildProgress progress, CancellationToken ct)
    {
        var chunks = Channel.CreateBounded<List<AuditEntry>>(new BoundedChannelOptions(Writers * 2) { SingleWriter = true });
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = Task.Run(() => ReadAndLinkAsync(upTo, from, chunks.Writer, progress, failed.Token), failed.Token);
        var writing = Enumerable.Range(0, Writers).Select(_ => Task.Run(() => WriteAsync(chunks.Reader, failed.Token), failed.Token)).ToList();
        try
        {
            await Task.WhenAll(writing);
            return await reading;
        }
        catch
        {
            await failed.CancelAsync(); // the others would wait for each other for ever
            throw;
        }
    }

    private async Task WriteAsync(ChannelReader<List<AuditEntry>> chunks, CancellationToken ct)
    {
        var type = typeof(AuditEntry).FullName;
        var buffer = new ArrayBufferWriter<byte>(1024);
        await using var json = new Utf8JsonWriter(buffer);
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await foreach (var chunk in chunks.ReadAllAsync(ct))
        {
            // One version per chunk: a document's version only has to change when the document does, and a fresh one per
            // entry was a getrandom system call per entry (bench … audit profile, session 14).
            var version = Guid.CreateVersion7();
            await using var copy = await connection.BeginBinaryImportAsync(
                $"copy {Entries} (id, data, mt_version, mt_dotnet_type, {AuditEntry.Columns}) from stdin (format binary)", ct);
            foreach (var entry in chunk)
            {
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(entry.Id, NpgsqlDbType.Bigint, ct);
                // The UTF-8 bytes as they are (the importer copies them before it returns): a string of them was a second
                // copy of every entry, twice its size, that Npgsql then encoded back to UTF-8.
                await copy.WriteAsync(RenderUtf8(entry, json, buffer), NpgsqlDbType.Jsonb, ct);
                await copy.WriteAsync(version, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync(type, NpgsqlDbType.Varchar, ct);
                if (entry.TenantId is { } tenant) await copy.WriteAsync(tenant, NpgsqlDbType.Uuid, ct);
                else await copy.WriteNullAsync(ct);
                await copy.WriteAsync(entry.At.ToUniversalTime(), NpgsqlDbType.TimestampTz, ct);
                if (entry.ResourceId is { } resource) await copy.WriteAsync(resource, NpgsqlDbType.Uuid, ct);
                else await copy.WriteNullAsync(ct);
            }
            await copy.CompleteAsync(ct);
        }
    }

    /// <summary>
    /// The reader only reads: it hands batches of rows to the linker, which hashes the chain on a thread of its own. On
    /// one thread the two took turns, and the read (Npgsql's parsing of ten columns) was as long as the hashing.
    /// </summary>
    private async Task<AuditChainHead> ReadAndLinkAsync(long upTo, AuditChainHead from, ChannelWriter<List<AuditEntry>> chunks, RebuildProgress progress,
        CancellationToken ct)
    {
        try
        {
            var rows = Channel.CreateBounded<AuditedEvent[]>(new BoundedChannelOptions(8) { SingleWriter = true, SingleReader = true });
            var reading = Task.Run(() => ReadAsync(from.LastEventSeq, upTo, rows.Writer, ct), ct);
            var linker = new AuditChainLinker(from);
            var chunk = new List<AuditEntry>(ChunkRows + 2 * ReadBatch);
            var add = chunk.Add;
            await foreach (var batch in rows.Reader.ReadAllAsync(ct))
            {
                var linked = 0;
                foreach (var e in batch)
                {
                    if (e.Type is null) break; // the last batch is not full
                    linker.Link(e, add);
                    linked++;
                }
                progress.Advance(linked);
                if (chunk.Count < ChunkRows) continue;
                await chunks.WriteAsync(chunk, ct);
                chunk = new List<AuditEntry>(ChunkRows + 2 * ReadBatch);
                add = chunk.Add;
            }
            await reading;
            if (chunk.Count > 0) await chunks.WriteAsync(chunk, ct);
            progress.Stage("read and link (beside the copy)", progress.Elapsed);
            var head = linker.Head;
            // Gaps at the end of the range are behind the head too.
            if (head.LastEventSeq < upTo) head.LastEventSeq = upTo;
            return head;
        }
        finally
        {
            chunks.Complete();
        }
    }

    private const int ReadBatch = 2_000;

    private async Task ReadAsync(long after, long upTo, ChannelWriter<AuditedEvent[]> rows, CancellationToken ct)
    {
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand($"""
                select seq_id, timestamp, stream_id, type, correlation_id, causation_id, headers ->> '{AuditHeaders.Actor}', headers ->> '{AuditHeaders.Tenant}',
                       headers ->> '{AuditHeaders.Command}', headers ->> '{AuditHeaders.CommandId}'
                from {schema}.mt_events where seq_id > @after and seq_id <= @upTo order by seq_id
                """, connection) { CommandTimeout = 0 };
            cmd.Parameters.AddWithValue("after", after);
            cmd.Parameters.AddWithValue("upTo", upTo);
            await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
            var batch = new AuditedEvent[ReadBatch];
            var n = 0;
            while (await reader.ReadAsync(ct))
            {
                batch[n++] = new AuditedEvent(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1), reader.IsDBNull(2) ? Guid.Empty : reader.GetGuid(2),
                    reader.GetString(3), Text(reader, 4), Text(reader, 5), Text(reader, 6), Text(reader, 7), Text(reader, 8), Text(reader, 9));
                if (n < ReadBatch) continue;
                await rows.WriteAsync(batch, ct);
                batch = new AuditedEvent[ReadBatch];
                n = 0;
            }
            if (n > 0) await rows.WriteAsync(batch, ct);
        }
        finally
        {
            rows.Complete();
        }
    }

    /// <summary>
    /// An entry as the JSON Marten's serializer (System.Text.Json, property names as declared) makes of it, written
    /// without reflection: the same document, at a fraction of the CPU (AuditChainSpecs compares the two).
    /// </summary>
    public static string Render(AuditEntry entry, Utf8JsonWriter json, ArrayBufferWriter<byte> buffer) =>
        Encoding.UTF8.GetString(RenderUtf8(entry, json, buffer).Span);

    /// <summary><see cref="Render"/> as UTF-8 bytes, valid until the next call with the same buffer.</summary>
    public static ReadOnlyMemory<byte> RenderUtf8(AuditEntry entry, Utf8JsonWriter json, ArrayBufferWriter<byte> buffer)
    {
        buffer.ResetWrittenCount();
        json.Reset(buffer);
        json.WriteStartObject();
        json.WriteNumber(nameof(AuditEntry.Id), entry.Id);
        json.WriteNumber(nameof(AuditEntry.EventSeq), entry.EventSeq);
        json.WriteString(nameof(AuditEntry.At), entry.At);
        if (entry.TenantId is { } tenant) json.WriteString(nameof(AuditEntry.TenantId), tenant);
        else json.WriteNull(nameof(AuditEntry.TenantId));
        json.WriteString(nameof(AuditEntry.Actor), entry.Actor);
        json.WriteString(nameof(AuditEntry.Action), entry.Action);
        if (entry.ResourceId is { } resource) json.WriteString(nameof(AuditEntry.ResourceId), resource);
        else json.WriteNull(nameof(AuditEntry.ResourceId));
        json.WriteString(nameof(AuditEntry.Outcome), entry.Outcome);
        json.WriteString(nameof(AuditEntry.CorrelationId), entry.CorrelationId);
        json.WriteString(nameof(AuditEntry.CausationId), entry.CausationId);
        json.WriteString(nameof(AuditEntry.Hash), entry.Hash);
        json.WriteString(nameof(AuditEntry.PreviousHash), entry.PreviousHash);
        json.WriteEndObject();
        json.Flush();
        return buffer.WrittenMemory;
    }

    private async Task<long?> ProgressionAsync(NpgsqlConnection connection, string shard, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"select last_seq_id from {schema}.mt_event_progression where name = @shard", connection);
        cmd.Parameters.AddWithValue("shard", shard);
        return await cmd.ExecuteScalarAsync(ct) is long seq ? seq : null;
    }

    private static string? Text(NpgsqlDataReader reader, int i) => reader.IsDBNull(i) ? null : reader.GetString(i);

    private async Task<string?> PrimaryKeyAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("select conname from pg_constraint where conrelid = @table::regclass and contype = 'p'", connection);
        cmd.Parameters.AddWithValue("table", Entries);
        return await cmd.ExecuteScalarAsync(ct) as string;
    }

    private async Task<List<(string Name, string Definition)>> SecondaryIndexesAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            "select indexname, indexdef from pg_indexes where schemaname = @schema and tablename = 'mt_doc_auditentry' and indexname not like 'pkey%'", connection);
        cmd.Parameters.AddWithValue("schema", schema);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var indexes = new List<(string, string)>();
        while (await reader.ReadAsync(ct)) indexes.Add((reader.GetString(0), reader.GetString(1)));
        return indexes;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, connection) { CommandTimeout = 0 };
        await cmd.ExecuteNonQueryAsync(ct);
    }

}
