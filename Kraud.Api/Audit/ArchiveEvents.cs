using System.Globalization;
using System.Text.Json;
using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Marten;
using Npgsql;

namespace Kraud.Api.Audit;

/// <summary>
/// Writes the events up to an instant, and the audit entries that cover them, to a compressed archive (see
/// EventArchiveFormat), after the archives already written. An archive ends at a head of the chain the platform signed
/// (AuditDigestSigner or signAuditDigest) whose entry is older than the instant, so the offline verifier can prove it
/// against the platform's key without the database. Writing an archive leaves the log as it is; asked to, the archiver
/// then verifies the file and removes the archived events of ended streams from the log (ArchivedEventRemoval).
/// </summary>
public sealed class EventArchiver(IDocumentStore store, KraudDatabase database, AuditSigningKey key, ArchivedEventRemoval removal, IConfiguration configuration,
    TimeProvider time)
{
    public string Directory => configuration["Replay:ArchiveDirectory"] ?? Path.Combine(KraudDatabase.StateDirectory(configuration), "archives");

    /// <summary>Events older than this are archived when no instant is given (Replay:ArchiveAfterDays, 90).</summary>
    public TimeSpan DefaultAge => TimeSpan.FromDays(configuration.GetValue("Replay:ArchiveAfterDays", 90.0));

    public async Task<EventArchiveDto> ArchiveAsync(DateTimeOffset before, bool removeFromLog, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var session = store.QuerySession();
        var last = await session.Query<EventArchiveRecord>().OrderByDescending(a => a.Id).FirstOrDefaultAsync(ct);
        var fromEntry = (last?.Id ?? 0) + 1;
        var fromSeq = (last?.ToSeq ?? 0) + 1;
        var lastBefore = await session.Query<AuditEntry>().Where(e => e.At < before && e.Id >= fromEntry).OrderByDescending(e => e.Id).Select(e => e.Id).FirstOrDefaultAsync(ct);
        var digest = lastBefore == 0
            ? null
            : await session.Query<AuditDigest>().Where(d => d.Id >= fromEntry && d.Id <= lastBefore).OrderByDescending(d => d.Id).FirstOrDefaultAsync(ct);
        if (digest is null)
            throw new DomainException(ErrorCode.Precondition,
                $"No signed digest of the audit chain covers entries from {fromEntry} older than {before.UtcDateTime:O}: an archive ends at a signed head. " +
                "Sign one (signAuditDigest; the platform signs every Kraud:AuditDigestIntervalSeconds) or archive up to a later instant.");
        var head = await session.LoadAsync<AuditEntry>(digest.Id, ct) ?? throw new InvalidOperationException($"Audit entry {digest.Id} is missing.");
        var toSeq = await session.Query<AuditEntry>().Where(e => e.Id >= fromEntry && e.Id <= digest.Id && e.Outcome == "recorded")
            .OrderByDescending(e => e.Id).Select(e => e.EventSeq).FirstOrDefaultAsync(ct);
        if (toSeq < fromSeq) toSeq = fromSeq - 1; // only commands' entries: no events in this archive

        System.IO.Directory.CreateDirectory(Directory);
        var file = Path.Combine(Directory, $"events-{fromSeq:D12}-{toSeq:D12}.jsonl.gz");
        var partial = file + $".{Guid.NewGuid():N}.partial";
        long events = 0;
        // The archived events linked again after the previous archive's head must give the signed head: then the linker's
        // recent commands at the head are known, and a chain rebuild can start there once the events are gone.
        var linker = new AuditChainLinker(new AuditChainHead
        {
            LastEntry = fromEntry - 1, LastEventSeq = fromSeq - 1, Hash = last?.HeadHash ?? AuditEntry.Genesis, RecentCommands = [.. last?.RecentCommands ?? []],
        });
        try
        {
            await using (var stream = File.Create(partial))
            await using (var writer = new EventArchiveFormat.Writer(stream))
            {
                await writer.LineAsync(Json(new
                {
                    archive = new ArchiveHeader(EventArchiveFormat.Format, fromSeq, toSeq, fromEntry, digest.Id, last?.HeadHash ?? AuditEntry.Genesis,
                        time.GetUtcNow().UtcDateTime),
                }));
                events = await WriteEventsAsync(writer, linker, fromSeq, toSeq, ct);
                await foreach (var entry in session.Query<AuditEntry>().Where(e => e.Id >= fromEntry && e.Id <= digest.Id).OrderBy(e => e.Id).ToAsyncEnumerable(ct))
                    await writer.LineAsync(Json(new { entry = ExportedEntry.From(entry) }));
                await writer.LineAsync(Json(new { digest = AuditDigestDto.From(digest) }));
                var signedAt = time.GetUtcNow();
                await writer.SealAsync(new ArchiveSeal(writer.Lines, writer.Chain, fromSeq, toSeq, digest.Id, digest.HeadHash, signedAt.UtcDateTime, key.KeyId,
                    key.Sign(EventArchiveFormat.SealMessage(writer.Lines, writer.Chain, fromSeq, toSeq, digest.Id, digest.HeadHash, signedAt))));
            }
            File.Move(partial, file, overwrite: true);
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }

        var record = new EventArchiveRecord
        {
            Id = digest.Id, FromEntry = fromEntry, FromSeq = fromSeq, ToSeq = toSeq, Events = events, HeadHash = digest.HeadHash, Boundary = head.At,
            File = file, Bytes = new FileInfo(file).Length, CreatedAt = time.GetUtcNow(),
            Relinked = linker.Head.LastEntry == digest.Id && linker.Head.Hash == digest.HeadHash && (last is null || last.Relinked),
        };
        if (record.Relinked) record.RecentCommands = [.. linker.Head.RecentCommands];
        await using var write = store.LightweightSession();
        // Insert: two archives of the same head at once leave one record (the other caller gets CONFLICT).
        write.Insert(record);
        try
        {
            await write.SaveChangesAsync(ct);
        }
        catch (JasperFx.DocumentAlreadyExistsException)
        {
            throw DomainException.Conflict($"An archive up to audit entry {digest.Id} was written meanwhile.");
        }
        if (removeFromLog) await RemoveAsync(record, ct);
        return EventArchiveDto.From(record, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Removes the events of the latest archive (written earlier, say, and copied off the machine since): what
    /// removeFromLog does right after writing one.
    /// </summary>
    public async Task<EventArchiveDto> RemoveLatestAsync(CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        EventArchiveRecord? latest;
        await using (var session = store.QuerySession())
            latest = await session.Query<EventArchiveRecord>().OrderByDescending(a => a.Id).FirstOrDefaultAsync(ct);
        if (latest is null) throw new DomainException(ErrorCode.Precondition, "No archive was written yet: archiveEvents first.");
        if (latest.RemovalFinished)
            throw new DomainException(ErrorCode.Precondition, $"The events of the latest archive ({latest.File}) were removed already, up to event {latest.RemovedUpToSeq}.");
        await RemoveAsync(latest, ct);
        return EventArchiveDto.From(latest, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Only an archive that proves what it holds lets events go: the file verified as the offline verifier does (the
    /// whole file is read into memory for it), and its head reached by linking its events again.
    /// </summary>
    private async Task RemoveAsync(EventArchiveRecord record, CancellationToken ct)
    {
        if (!record.Relinked)
            throw new DomainException(ErrorCode.Precondition,
                $"Archive {record.File} was written, but no events were removed: linking its events after the previous archive's head did not give " +
                $"the signed head {record.Id} (or an earlier archive's did not), so a chain rebuild could not start there.");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        EventArchiveVerifier.Result verified;
        await using (var file = File.OpenRead(record.File))
            verified = EventArchiveVerifier.Verify(file, key.PublicKey);
        if (!verified.Valid)
            throw new DomainException(ErrorCode.Precondition, $"Archive {record.File} was written, but no events were removed: it does not verify ({verified.Message}).");
        await removal.RemoveAsync(record, clock.Elapsed, ct);
    }

    private async Task<long> WriteEventsAsync(EventArchiveFormat.Writer writer, AuditChainLinker linker, long fromSeq, long toSeq, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"""
            select seq_id, id, stream_id, version, type, timestamp, tenant_id, data::text, headers::text, correlation_id, causation_id, mt_dotnet_type
            from {KraudDatabase.Schema}.mt_events where seq_id between @from and @to order by seq_id
            """, connection) { CommandTimeout = 0 };
        cmd.Parameters.AddWithValue("from", fromSeq);
        cmd.Parameters.AddWithValue("to", toSeq);
        await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
        long count = 0;
        while (await reader.ReadAsync(ct))
        {
            var (seq, id, stream, version, type, at) = (reader.GetInt64(0), reader.GetGuid(1), reader.IsDBNull(2) ? Guid.Empty : reader.GetGuid(2),
                reader.GetInt64(3), reader.GetString(4), reader.GetFieldValue<DateTimeOffset>(5));
            var e = new ArchivedEvent(seq, id, stream, version, type, at.UtcDateTime.ToString(ExportedEntry.TimeFormat, CultureInfo.InvariantCulture), Text(reader, 6),
                JsonDocument.Parse(reader.GetString(7)).RootElement, reader.IsDBNull(8) ? null : JsonDocument.Parse(reader.GetString(8)).RootElement,
                Text(reader, 9), Text(reader, 10), Text(reader, 11));
            await writer.LineAsync(Json(new { @event = e }));
            linker.Link(new AuditedEvent(e.Seq, at, e.StreamId, e.Type, e.CorrelationId, e.CausationId,
                Header(e.Headers, AuditHeaders.Actor), Header(e.Headers, AuditHeaders.Tenant), Header(e.Headers, AuditHeaders.Command),
                Header(e.Headers, AuditHeaders.CommandId)), static _ => { });
            count++;
        }
        return count;
    }

    private static string? Text(NpgsqlDataReader reader, int i) => reader.IsDBNull(i) ? null : reader.GetString(i);

    /// <summary>A header as the live projection reads it (Marten's headers are JSON values, told by their ToString).</summary>
    private static string? Header(JsonElement? headers, string name) =>
        headers is { ValueKind: JsonValueKind.Object } h && h.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value.ToString() : null;

    private static string Json(object value) => JsonSerializer.Serialize(value, EventArchiveFormat.Json);
}

public static class ArchiveEventsField
{
    public static void Map(Fields fields)
    {
        MapArchive(fields);
        fields.Mutation("removeArchivedEvents", async ctx =>
        {
            if (ctx.Caller().Principal.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can remove archived events.");
            return await ctx.Service<EventArchiver>().RemoveLatestAsync(ctx.CancellationToken);
        });
    }

    private static void MapArchive(Fields fields) => fields.Mutation("archiveEvents", async ctx =>
    {
        if (ctx.Caller().Principal.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can archive events.");
        var archiver = ctx.Service<EventArchiver>();
        var now = ctx.Service<TimeProvider>().GetUtcNow();
        var before = ctx.Utc("before") ?? now - archiver.DefaultAge;
        if (before > now) throw DomainException.Validation($"before ({before.UtcDateTime:O}) is in the future: only past events can be archived.");
        return await archiver.ArchiveAsync(before, ctx.GetArgument<bool?>("removeFromLog") ?? false, ctx.CancellationToken);
    });
}
