using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Kraud.Api.Audit;

/// <summary>The first line of an archive: which part of the log and of the audit chain it holds.</summary>
public sealed record ArchiveHeader(string Format, long FromSeq, long ToSeq, long FromEntry, long ToEntry, string PreviousHash, DateTime CreatedAt);

/// <summary>One event of the log as mt_events held it, body and metadata.</summary>
public sealed record ArchivedEvent(long Seq, Guid Id, Guid StreamId, long Version, string Type, string At, string? TenantId, JsonElement Data,
    JsonElement? Headers, string? CorrelationId, string? CausationId, string? DotnetType);

/// <summary>The last line: an Ed25519 signature over the line chain's last hash, the line count and the ranges it holds.</summary>
public sealed record ArchiveSeal(long Lines, string LineChain, long FromSeq, long ToSeq, long HeadEntry, string HeadHash, DateTime SignedAt, string KeyId,
    string Signature)
{
    public DateTimeOffset SignedAtUtc => new(DateTime.SpecifyKind(SignedAt, DateTimeKind.Utc));
}

/// <summary>
/// An event archive is gzip-compressed JSON lines. Every line but the last is "&lt;hash&gt; &lt;json&gt;", the hash being
/// SHA-256 of the previous line's hash, a newline and this line's JSON: an edited line no longer matches its own hash, so
/// the verifier names it. The lines are the header, the events (bodies included), the audit chain's entries that cover
/// them, the platform's signed digest of the last of those entries, and a seal signed when the archive was written.
/// </summary>
public static class EventArchiveFormat
{
    public const string Format = "kraud-event-archive/v1";
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string NextHash(string previous, string json)
    {
        // Into one pooled buffer, not a joined string and its bytes: the verifier hashes every line of millions.
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(previous.Length + 1 + json.Length));
        try
        {
            var length = Encoding.UTF8.GetBytes(previous, buffer);
            buffer[length++] = (byte)'\n';
            length += Encoding.UTF8.GetBytes(json, buffer.AsSpan(length));
            return Convert.ToHexStringLower(SHA256.HashData(buffer.AsSpan(0, length)));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public static string SealMessage(long lines, string lineChain, long fromSeq, long toSeq, long headEntry, string headHash, DateTimeOffset signedAt) =>
        string.Join('\n', Format, lines.ToString(CultureInfo.InvariantCulture), lineChain, fromSeq.ToString(CultureInfo.InvariantCulture),
            toSeq.ToString(CultureInfo.InvariantCulture), headEntry.ToString(CultureInfo.InvariantCulture), headHash, signedAt.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));

    /// <summary>Writes chained lines to a gzip stream and tells the chain's last hash.</summary>
    public sealed class Writer(Stream file) : IAsyncDisposable
    {
        private readonly StreamWriter _out = new(new GZipStream(file, CompressionLevel.Fastest), new UTF8Encoding(false), 1 << 16) { NewLine = "\n" };

        public string Chain { get; private set; } = Kraud.Projections.Audit.AuditEntry.Genesis;
        public long Lines { get; private set; }

        public Task LineAsync(string json)
        {
            Chain = NextHash(Chain, json);
            Lines++;
            return _out.WriteLineAsync($"{Chain} {json}");
        }

        public Task SealAsync(ArchiveSeal seal) => _out.WriteLineAsync(JsonSerializer.Serialize(new { seal }, Json));

        public async ValueTask DisposeAsync() => await _out.DisposeAsync();
    }
}

/// <summary>
/// Checks an event archive without the database: every line against its hash, every audit entry's hash and link, that
/// every archived event is the one its "recorded" entry names, the platform's signed digest of the last entry, and the
/// seal. Named the first line that is wrong.
/// </summary>
public static class EventArchiveVerifier
{
    public sealed record Result(bool Valid, string Message);

    /// <summary>What an archived event's "recorded" entry names of it (the fields of <see cref="ArchivedEvent"/> as written).</summary>
    private readonly record struct Recorded(long Seq, Guid StreamId, string? Type, string? At, string? CorrelationId, string? CausationId)
    {
        public static Recorded? Read(JsonElement e)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("seq", out var seq) || !seq.TryGetInt64(out var s) ||
                !e.TryGetProperty("streamId", out var stream) || !stream.TryGetGuid(out var streamId))
                return null;
            return new Recorded(s, streamId, Text(e, "type"), Text(e, "at"), Text(e, "correlationId"), Text(e, "causationId"));
        }

        private static string? Text(JsonElement e, string name) =>
            e.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }

    public static Result Verify(Stream gzipped, byte[] publicKey)
    {
        // Streamed, one line ahead (the last line is the seal): an archive of millions of events is not held in memory,
        // only the few fields of each event its entry is checked against.
        using var reader = new StreamReader(new GZipStream(gzipped, CompressionMode.Decompress), Encoding.UTF8);
        string? unreadable = null;
        string? Read()
        {
            try
            {
                return reader.ReadLine();
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                unreadable = e.Message;
                return null;
            }
        }
        var current = Read();
        var next = current is null ? null : Read();

        var chain = Kraud.Projections.Audit.AuditEntry.Genesis;
        ArchiveHeader? header = null;
        AuditDigestDto? digest = null;
        ExportedEntry? previous = null;
        var events = new Dictionary<long, (int Line, Recorded Event)>();
        var recorded = 0;
        var count = 0;
        for (var i = 0; next is not null && unreadable is null; i++, current = next, next = Read())
        {
            var n = i + 1;
            count = n;
            var line = current!;
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space != 64) return new(false, $"TAMPERED: line {n} has no line hash.");
            var json = line[(space + 1)..];
            chain = EventArchiveFormat.NextHash(chain, json);
            if (!string.Equals(chain, line[..space], StringComparison.Ordinal))
                return new(false, $"TAMPERED: line {n}: its content does not match its line hash.");
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(json);
            }
            catch (JsonException e)
            {
                return new(false, $"TAMPERED: line {n} is not JSON ({e.Message}).");
            }
            using var parsed = document;
            var root = document.RootElement;
            if (i == 0)
            {
                header = root.TryGetProperty("archive", out var h) ? h.Deserialize<ArchiveHeader>(EventArchiveFormat.Json) : null;
                if (header is null || header.Format != EventArchiveFormat.Format) return new(false, $"TAMPERED: line 1 is not an archive header of {EventArchiveFormat.Format}.");
                continue;
            }
            if (root.TryGetProperty("event", out var ev))
            {
                // Only the fields its entry is checked against, read in place: a whole ArchivedEvent copied each body.
                if (Recorded.Read(ev) is not { } e) return new(false, $"TAMPERED: line {n} is not an archived event.");
                if (e.Seq <= header!.FromSeq - 1 || e.Seq > header.ToSeq || !events.TryAdd(e.Seq, (n, e)))
                    return new(false, $"TAMPERED: line {n} (event {e.Seq}) is outside the archive's range or repeated.");
            }
            else if (root.TryGetProperty("entry", out var en))
            {
                var entry = en.Deserialize<ExportedEntry>(EventArchiveFormat.Json)!;
                if (entry.ToEntry().ComputeHash() != entry.Hash)
                    return new(false, $"TAMPERED: line {n} (entry {entry.Seq}): its content does not match its hash.");
                var expectedSeq = previous?.Seq + 1 ?? header!.FromEntry;
                var expectedLink = previous?.Hash ?? header!.PreviousHash;
                if (entry.Seq != expectedSeq || entry.PreviousHash != expectedLink)
                    return new(false, $"TAMPERED: line {n} (entry {entry.Seq}): it does not link to the entry before it.");
                if (entry.Outcome == "recorded")
                {
                    recorded++;
                    if (!events.TryGetValue(entry.EventSeq, out var archived))
                        return new(false, $"TAMPERED: line {n} (entry {entry.Seq}): event {entry.EventSeq} it records is not in the archive.");
                    var e = archived.Event;
                    if (e.Type != entry.Action || e.At != entry.At || (e.StreamId == Guid.Empty ? null : e.StreamId) != entry.ResourceId ||
                        e.CorrelationId != entry.CorrelationId || e.CausationId != entry.CausationId)
                        return new(false, $"TAMPERED: line {archived.Line} (event {e.Seq}) is not the event entry {entry.Seq} recorded.");
                }
                previous = entry;
            }
            else if (root.TryGetProperty("digest", out var d))
            {
                digest = d.Deserialize<AuditDigestDto>(EventArchiveFormat.Json);
            }
            else return new(false, $"TAMPERED: line {n} is neither an event, an entry nor a digest.");
        }
        if (unreadable is not null) return new(false, $"TAMPERED: the archive is not readable gzip ({unreadable}).");
        var total = count + (current is null ? 0 : 1);
        if (total < 3) return new(false, "TAMPERED: the archive is too short: it needs a header, a digest and a seal.");
        if (recorded != events.Count) return new(false, $"TAMPERED: {events.Count} events are archived, but {recorded} entries record events.");
        if (previous is null || previous.Seq != header!.ToEntry) return new(false, $"TAMPERED: the archive's entries do not end at entry {header!.ToEntry}.");
        if (digest is null || digest.Seq != previous.Seq || digest.HeadHash != previous.Hash)
            return new(false, $"TAMPERED: the signed digest does not cover entry {previous.Seq} (hash {previous.Hash[..12]}…).");
        if (AuditSigningKey.KeyIdOf(publicKey) != digest.KeyId)
            return new(false, $"UNVERIFIABLE: the chain's digest was signed with key {digest.KeyId}, not with the key given ({AuditSigningKey.KeyIdOf(publicKey)}).");
        if (!AuditSigningKey.Verify(publicKey, AuditSignatures.Digest(digest.Seq, digest.HeadHash, new DateTimeOffset(DateTime.SpecifyKind(digest.SignedAt, DateTimeKind.Utc))), digest.Signature))
            return new(false, $"TAMPERED: the signature of the chain's digest (entry {digest.Seq}) is not valid for key {digest.KeyId}.");

        ArchiveSeal? seal;
        try
        {
            seal = JsonDocument.Parse(current!).RootElement.TryGetProperty("seal", out var s) ? s.Deserialize<ArchiveSeal>(EventArchiveFormat.Json) : null;
        }
        catch (JsonException)
        {
            seal = null;
        }
        if (seal is null) return new(false, $"TAMPERED: line {total} is not the archive's seal.");
        if (seal.Lines != total - 1 || seal.LineChain != chain || seal.FromSeq != header!.FromSeq || seal.ToSeq != header.ToSeq ||
            seal.HeadEntry != previous.Seq || seal.HeadHash != previous.Hash)
            return new(false, $"TAMPERED: the seal on line {total} does not cover these {total - 1} lines (lines were added, removed or rewritten).");
        if (AuditSigningKey.KeyIdOf(publicKey) != seal.KeyId || !AuditSigningKey.Verify(publicKey,
                EventArchiveFormat.SealMessage(seal.Lines, seal.LineChain, seal.FromSeq, seal.ToSeq, seal.HeadEntry, seal.HeadHash, seal.SignedAtUtc), seal.Signature))
            return new(false, $"TAMPERED: the seal's signature on line {total} is not valid for key {AuditSigningKey.KeyIdOf(publicKey)}.");
        return new(true, $"VALID: events {header.FromSeq}–{header.ToSeq} ({events.Count}), audit entries {header.FromEntry}–{header.ToEntry} linked and hashed, " +
                         $"the chain's digest of entry {digest.Seq} signed at {digest.SignedAt:O} and the seal signed by key {seal.KeyId}.");
    }
}
