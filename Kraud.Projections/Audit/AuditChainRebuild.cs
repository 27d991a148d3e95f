using System.Threading.Channels;
using Kraud.Projections.Common;
using Marten;
using Npgsql;
using NpgsqlTypes;

namespace Kraud.Projections.Audit;

/// <summary>
/// Rebuilds the audit chain from mt_events without the async daemon, at close to the speed PostgreSQL reads the log:
/// one sequential read of the columns the chain is made of (never the event bodies), the chain linked and hashed in a
/// tight loop, and the entries written by binary COPY on a second connection while the next ones are read. The
/// secondary indexes are dropped for the load and made again after it (one sort instead of a million inserts).
/// It goes up to <c>upTo</c> (the daemon's high-water mark: nothing below it is still being committed) and leaves the
/// head and the daemon's position there, so the daemon's agent, stopped by the caller for the rebuild, goes on from
/// the next event: the chain is the one a rebuild at rest makes.
/// </summary>
public sealed class AuditChainRebuild(IDocumentStore store, string connectionString, string schema)
{
    private const int ChunkRows = 50_000;
    private string Entries => $"{schema}.mt_doc_auditentry";

    public async Task<AuditChainHead> RunAsync(long upTo, RebuildProgress progress, CancellationToken ct)
    {
        await using var writer = new NpgsqlConnection(connectionString);
        await writer.OpenAsync(ct);
        progress.Begin(upTo); // sequence numbers, so a little more than the events where transactions rolled back
        await ExecuteAsync(writer, $"truncate {Entries}; delete from {schema}.mt_doc_auditchainhead where id = '{AuditChainHead.PlatformChain}'", ct);
        var indexes = await SecondaryIndexesAsync(writer, ct);
        foreach (var (name, _) in indexes) await ExecuteAsync(writer, $"drop index if exists {schema}.{name}", ct);
        AuditChainHead head;
        try
        {
            head = await LoadAsync(writer, upTo, progress, ct);
        }
        finally
        {
            foreach (var (_, definition) in indexes)
                await ExecuteAsync(writer, definition.Replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", StringComparison.Ordinal), CancellationToken.None);
        }

        await using var session = store.LightweightSession();
        session.Store(head);
        session.QueueSqlCommand(
            $"insert into {schema}.mt_event_progression (name, last_seq_id, last_updated) values (?, ?, now()) " +
            "on conflict (name) do update set last_seq_id = excluded.last_seq_id, last_updated = now()", $"{AuditChainProjection.Name}:All", head.LastEventSeq);
        await session.SaveChangesAsync(ct);
        return head;
    }

    /// <summary>Reads, links and writes in two threads: the events are read and hashed while the previous chunk is copied in.</summary>
    private async Task<AuditChainHead> LoadAsync(NpgsqlConnection writer, long upTo, RebuildProgress progress, CancellationToken ct)
    {

        var chunks = Channel.CreateBounded<List<AuditEntry>>(new BoundedChannelOptions(4) { SingleReader = true, SingleWriter = true });
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = Task.Run(() => ReadAndLinkAsync(upTo, chunks.Writer, progress, failed.Token), failed.Token);
        try
        {
            var serializer = store.Options.Serializer();
            var type = typeof(AuditEntry).FullName;
            await foreach (var chunk in chunks.Reader.ReadAllAsync(ct))
            {
                await using var copy = await writer.BeginBinaryImportAsync(
                    $"copy {Entries} (id, data, mt_version, mt_dotnet_type) from stdin (format binary)", ct);
                foreach (var entry in chunk)
                {
                    await copy.StartRowAsync(ct);
                    await copy.WriteAsync(entry.Id, NpgsqlDbType.Bigint, ct);
                    await copy.WriteAsync(serializer.ToJson(entry), NpgsqlDbType.Jsonb, ct);
                    await copy.WriteAsync(Guid.CreateVersion7(), NpgsqlDbType.Uuid, ct);
                    await copy.WriteAsync(type, NpgsqlDbType.Varchar, ct);
                }
                await copy.CompleteAsync(ct);
            }
        }
        catch
        {
            await failed.CancelAsync(); // the reader would wait for room in the channel for ever
            throw;
        }
        return await reading;
    }

    private async Task<AuditChainHead> ReadAndLinkAsync(long upTo, ChannelWriter<List<AuditEntry>> chunks, RebuildProgress progress, CancellationToken ct)
    {
        try
        {
            var linker = new AuditChainLinker(new AuditChainHead());
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand($"""
                select seq_id, timestamp, stream_id, type, correlation_id, causation_id, headers ->> '{AuditHeaders.Actor}', headers ->> '{AuditHeaders.Tenant}',
                       headers ->> '{AuditHeaders.Command}', headers ->> '{AuditHeaders.CommandId}'
                from {schema}.mt_events where seq_id <= @upTo order by seq_id
                """, connection) { CommandTimeout = 0 };
            cmd.Parameters.AddWithValue("upTo", upTo);
            await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
            var chunk = new List<AuditEntry>(ChunkRows + 2);
            var read = 0;
            while (await reader.ReadAsync(ct))
            {
                linker.Link(new AuditedEvent(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1), reader.IsDBNull(2) ? Guid.Empty : reader.GetGuid(2),
                    reader.GetString(3), Text(reader, 4), Text(reader, 5), Text(reader, 6), Text(reader, 7), Text(reader, 8), Text(reader, 9)), chunk.Add);
                if (++read % 10_000 == 0) progress.Advance(10_000);
                if (chunk.Count < ChunkRows) continue;
                await chunks.WriteAsync(chunk, ct);
                chunk = new List<AuditEntry>(ChunkRows + 2);
            }
            if (chunk.Count > 0) await chunks.WriteAsync(chunk, ct);
            progress.Advance(read % 10_000);
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

    private static string? Text(NpgsqlDataReader reader, int i) => reader.IsDBNull(i) ? null : reader.GetString(i);

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
