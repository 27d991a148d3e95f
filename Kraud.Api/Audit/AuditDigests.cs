using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Marten;

namespace Kraud.Api.Audit;

/// <summary>A signed statement that the chain had this head at that time: whoever keeps one can later prove a rewrite.</summary>
public sealed class AuditDigest
{
    /// <summary>The head's sequence number: one digest per head.</summary>
    public long Id { get; set; }
    public string HeadHash { get; set; } = "";
    public DateTimeOffset SignedAt { get; set; }
    public string KeyId { get; set; } = "";
    public string Signature { get; set; } = "";
}

public sealed record AuditDigestDto(long Seq, string HeadHash, DateTime SignedAt, string KeyId, string Signature)
{
    public static AuditDigestDto From(AuditDigest d) => new(d.Id, d.HeadHash, d.SignedAt.UtcDateTime, d.KeyId, d.Signature);
}

public sealed class AuditDigests(IDocumentStore store, AuditSigningKey key, TimeProvider time)
{
    /// <summary>Signs the current head of the chain, unless a digest of that head exists already; null while the chain is empty.</summary>
    public async Task<AuditDigest?> SignHeadAsync(CancellationToken ct)
    {
        await using var session = store.LightweightSession();
        var head = await session.LoadAsync<AuditChainHead>(AuditChainHead.PlatformChain, ct);
        if (head is null || head.LastEntry == 0) return null;
        if (await session.LoadAsync<AuditDigest>(head.LastEntry, ct) is { } existing) return existing;
        var at = time.GetUtcNow();
        var digest = new AuditDigest
        {
            Id = head.LastEntry, HeadHash = head.Hash, SignedAt = at, KeyId = key.KeyId,
            Signature = key.Sign(AuditSignatures.Digest(head.LastEntry, head.Hash, at)),
        };
        // Insert, not upsert: when two nodes sign the same head at once, the second finds the first's digest rather than
        // replacing it, so a head never has two signatures (one of them handed out and then lost).
        session.Insert(digest);
        try
        {
            await session.SaveChangesAsync(ct);
            return digest;
        }
        catch (JasperFx.DocumentAlreadyExistsException)
        {
            await using var reader = store.QuerySession();
            return await reader.LoadAsync<AuditDigest>(head.LastEntry, ct);
        }
    }
}

/// <summary>Signs the head of the chain at intervals (Kraud:AuditDigestIntervalSeconds, default 300).</summary>
public sealed class AuditDigestSigner(AuditDigests digests, IConfiguration configuration, TimeProvider time, ILogger<AuditDigestSigner> logger)
    : PeriodicRound(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(configuration.GetValue("Kraud:AuditDigestIntervalSeconds", 300));
    protected override string FailureMessage => "Could not sign the audit chain's head";

    protected override Task RoundAsync(CancellationToken ct) => digests.SignHeadAsync(ct);
}

public static class AuditDigestFields
{
    public static void Map(Fields fields)
    {
        fields.Mutation("signAuditDigest", async ctx =>
        {
            if (ctx.Caller().Principal.Role != Role.Operator) throw DomainException.Forbidden("Only an operator can sign audit digests on demand.");
            var digest = await ctx.Service<AuditDigests>().SignHeadAsync(ctx.CancellationToken)
                         ?? throw new DomainException(ErrorCode.Precondition, "The audit chain is still empty: there is nothing to sign.");
            return AuditDigestDto.From(digest);
        });
        fields.Query("auditDigests", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (principal.Role == Role.Member) throw DomainException.Forbidden("The audit log is readable by operators, auditors and the tenant's ADMIN.");
            var first = ctx.GetArgument<int?>("first") ?? 20;
            Names.RequireRange(first, 1, 1000, "first");
            var digests = await ctx.Service<IQuerySession>().Query<AuditDigest>().OrderByDescending(d => d.Id).Take(first).ToListAsync(ctx.CancellationToken);
            return digests.Select(AuditDigestDto.From).ToList();
        });
    }
}
