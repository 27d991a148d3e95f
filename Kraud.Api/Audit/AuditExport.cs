using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FastEndpoints;
using Kraud.Api.Common;
using Kraud.Projections.Audit;
using Marten;

namespace Kraud.Api.Audit;

/// <summary>One exported entry: every field the entry's hash covers, so a verifier can recompute it offline.</summary>
public sealed record ExportedEntry(long Seq, long EventSeq, string At, Guid? TenantId, string Actor, string Action, Guid? ResourceId, string Outcome,
    string? CorrelationId, string? CausationId, string Hash, string PreviousHash)
{
    public const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'";

    public static ExportedEntry From(AuditEntry e) => new(e.Id, e.EventSeq, e.At.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture), e.TenantId,
        e.Actor, e.Action, e.ResourceId, e.Outcome, e.CorrelationId, e.CausationId, e.Hash, e.PreviousHash);

    public AuditEntry ToEntry() => new()
    {
        Id = Seq,
        EventSeq = EventSeq,
        At = DateTimeOffset.ParseExact(At, TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal),
        TenantId = TenantId,
        Actor = Actor,
        Action = Action,
        ResourceId = ResourceId,
        Outcome = Outcome,
        CorrelationId = CorrelationId,
        CausationId = CausationId,
        Hash = Hash,
        PreviousHash = PreviousHash,
    };

    public static readonly string[] CsvColumns =
        ["seq", "eventSeq", "at", "tenantId", "actor", "action", "resourceId", "outcome", "correlationId", "causationId", "hash", "previousHash"];

    public string ToCsv() => string.Join(',', new object?[] { Seq, EventSeq, At, TenantId, Actor, Action, ResourceId, Outcome, CorrelationId, CausationId, Hash, PreviousHash }
        .Select(v => Csv(Convert.ToString(v, CultureInfo.InvariantCulture) ?? "")));

    private static string Csv(string value) => value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : "\"" + value.Replace("\"", "\"\"") + "\"";
}

/// <summary>The signature that closes a JSONL export (its last line) or accompanies a CSV one (the Link header's target).</summary>
/// <param name="Contiguous">true when the export is the whole chain up to its head (no tenant or time filter): then no entry may be missing.</param>
public sealed record ExportDigest(string Format, long Entries, bool Contiguous, string Sha256, long HeadSeq, string HeadHash, DateTime SignedAt, string KeyId,
    string Signature)
{
    /// <summary>The instant that was signed: exports write it in UTC, whatever kind a reader's parser gives the DateTime.</summary>
    public DateTimeOffset SignedAtUtc => new(DateTime.SpecifyKind(SignedAt, DateTimeKind.Utc));
}

public sealed class AuditExportRequest
{
    public Guid? TenantId { get; set; }
    public DateTime? From { get; set; }
    public DateTime? To { get; set; }
    public string Format { get; set; } = "jsonl";

    /// <summary>The last entry included; fixed by the first response so that a CSV's digest covers the very same rows.</summary>
    public long? ToSeq { get; set; }
}

/// <summary>
/// GET /api/exports/audit?tenantId=&amp;from=&amp;to=&amp;format=jsonl|csv: streams audit entries with their hashes. A JSONL export
/// ends with a signed digest over its own bytes; a CSV export links (Link header, rel="signature") to its digest.
/// Operators and platform auditors export everything; a tenant's ADMIN or AUDITOR its own tenant.
/// </summary>
public sealed class AuditExportEndpoint(TokenAuthenticator authenticator, IDocumentStore store, AuditSigningKey key, TimeProvider time)
    : Endpoint<AuditExportRequest>
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public override void Configure()
    {
        Get("/api/exports/audit", "/api/exports/audit/digest");
        AllowAnonymous(); // the bearer token is checked below, with the same rules as the GraphQL audit log
        Summary(s => s.Summary = "Audit entries with their hashes, as JSONL ending in a signed digest or as CSV with a link to one.");
    }

    public override async Task HandleAsync(AuditExportRequest request, CancellationToken ct)
    {
        var (allowed, tenant) = await AuditReaderAccess.AuthorizeAsync(HttpContext, authenticator, request.TenantId, request.Format, ["jsonl", "csv"], ct);
        if (!allowed) return;

        await using var session = store.QuerySession();
        var head = await session.LoadAsync<AuditChainHead>(AuditChainHead.PlatformChain, ct) ?? new AuditChainHead();
        var toSeq = Math.Min(request.ToSeq ?? head.LastEntry, head.LastEntry);
        var digestOnly = HttpContext.Request.Path.Value!.EndsWith("/digest", StringComparison.Ordinal);
        var response = HttpContext.Response;
        if (!digestOnly)
        {
            response.ContentType = request.Format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8";
            if (request.Format == "csv")
                response.Headers.Link = $"<{HttpContext.Request.Path}/digest{Query(request, toSeq)}>; rel=\"signature\"";
        }

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long entries = 0, lastSeq = 0;
        var lastHash = AuditEntry.Genesis;
        async Task Write(string line)
        {
            var bytes = Encoding.UTF8.GetBytes(line + "\n");
            sha.AppendData(bytes);
            if (!digestOnly) await response.Body.WriteAsync(bytes, ct);
        }

        if (request.Format == "csv") await Write(string.Join(',', ExportedEntry.CsvColumns));
        var query = session.Query<AuditEntry>().Where(e => e.Id <= toSeq);
        if (tenant is { } t) query = query.Where(e => e.TenantId == t);
        if (request.From is { } from) query = query.Where(e => e.At >= new DateTimeOffset(DateTime.SpecifyKind(from, DateTimeKind.Utc)));
        if (request.To is { } to) query = query.Where(e => e.At < new DateTimeOffset(DateTime.SpecifyKind(to, DateTimeKind.Utc)));
        await foreach (var entry in query.OrderBy(e => e.Id).ToAsyncEnumerable(ct))
        {
            var exported = ExportedEntry.From(entry);
            await Write(request.Format == "csv" ? exported.ToCsv() : JsonSerializer.Serialize(exported, Json));
            entries++;
            (lastSeq, lastHash) = (entry.Id, entry.Hash);
        }

        var signedAt = time.GetUtcNow();
        var sha256 = Convert.ToHexStringLower(sha.GetHashAndReset());
        var contiguous = tenant is null && request.From is null && request.To is null;
        var digest = new ExportDigest(request.Format, entries, contiguous, sha256, lastSeq, lastHash, signedAt.UtcDateTime, key.KeyId,
            key.Sign(AuditSignatures.Export(sha256, entries, contiguous, lastSeq, lastHash, signedAt)));
        if (digestOnly) await Send.ResponseAsync(digest, 200, ct);
        else if (request.Format == "jsonl")
            await response.Body.WriteAsync(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { digest }, Json) + "\n"), ct);
    }

    private static string Query(AuditExportRequest r, long toSeq)
    {
        var parts = new List<string> { $"format={r.Format}", $"toSeq={toSeq}" };
        if (r.TenantId is { } t) parts.Add($"tenantId={t}");
        if (r.From is { } f) parts.Add($"from={Uri.EscapeDataString(f.ToString("O", CultureInfo.InvariantCulture))}");
        if (r.To is { } to) parts.Add($"to={Uri.EscapeDataString(to.ToString("O", CultureInfo.InvariantCulture))}");
        return "?" + string.Join('&', parts);
    }
}

public sealed record PublicKeyResponse(string Algorithm, string KeyId, string PublicKey);

/// <summary>GET /.well-known/kraud-audit-key: the public half of the key that signs audit digests and exports.</summary>
public sealed class AuditPublicKeyEndpoint(AuditSigningKey key) : EndpointWithoutRequest<PublicKeyResponse>
{
    public const string Route = "/.well-known/kraud-audit-key";

    public override void Configure()
    {
        Get(Route);
        AllowAnonymous();
    }

    public override Task HandleAsync(CancellationToken ct) =>
        Send.ResponseAsync(new PublicKeyResponse("Ed25519", key.KeyId, Convert.ToBase64String(key.PublicKey)), 200, ct);
}
