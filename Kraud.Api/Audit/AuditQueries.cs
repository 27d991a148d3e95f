using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Marten;

namespace Kraud.Api.Audit;

public sealed record AuditEntryDto(long Seq, DateTime At, Guid? TenantId, string Actor, string Action, Guid? ResourceId, string Outcome,
    string? CorrelationId, string? CausationId, string Hash, string PreviousHash)
{
    public static AuditEntryDto From(AuditEntry e) => new(e.Id, e.At.UtcDateTime, e.TenantId, e.Actor, e.Action, e.ResourceId, e.Outcome,
        e.CorrelationId, e.CausationId, e.Hash, e.PreviousHash);
}

public sealed record AuditConnection(IReadOnlyList<AuditEntryDto> Nodes, PageInfo PageInfo, int TotalCount);

public sealed record AuditVerification(bool Valid, int Entries, long? FirstBrokenSeq, string HeadHash);

/// <summary>
/// auditLog and verifyAuditChain. Operators and platform auditors read every tenant; a tenant's ADMIN or AUDITOR
/// reads its own tenant's entries only; MEMBER tokens read none.
/// </summary>
public static class AuditQueries
{
    private const int VerifyPage = 5000;

    public static void Map(Fields fields)
    {
        fields.Query("auditLog", async ctx =>
        {
            var tenant = AuditReaderAccess.ScopeOf(ctx.Caller().Principal, OptionalId(ctx));
            var first = ctx.GetArgument<int?>("first") ?? 100;
            Names.RequireRange(first, 1, 1000, "first");
            var after = Cursor.DecodePosition(ctx.GetArgument<string?>("after"));
            var query = ctx.Service<IQuerySession>().Query<AuditEntry>().AsQueryable();
            if (tenant is { } t) query = query.Where(e => e.TenantId == t);
            if (ctx.GetArgument<DateTime?>("from") is { } from) query = query.Where(e => e.At >= Utc(from));
            if (ctx.GetArgument<DateTime?>("to") is { } to) query = query.Where(e => e.At < Utc(to));
            return await PageAsync(query, first, after, ctx.CancellationToken);
        });

        fields.Query("verifyAuditChain", async ctx =>
        {
            var tenant = AuditReaderAccess.ScopeOf(ctx.Caller().Principal, OptionalId(ctx));
            return await VerifyAsync<AuditEntry>(ctx.Service<IQuerySession>(), tenant, ctx.CancellationToken);
        });
    }

    /// <summary>A page of a chain in chain order, after the cursor's position.</summary>
    public static async Task<AuditConnection> PageAsync<T>(IQueryable<T> query, int first, long after, CancellationToken ct) where T : AuditEntry
    {
        var total = await query.CountAsync(ct);
        var page = await query.Where(e => e.Id > after).OrderBy(e => e.Id).Take(first + 1).ToListAsync(ct);
        var nodes = page.Take(first).ToList();
        return new AuditConnection(nodes.Select(AuditEntryDto.From).ToList(),
            new PageInfo(page.Count > first, nodes.Count == 0 ? null : Cursor.Encode(nodes[^1].Id)), total);
    }

    /// <summary>
    /// Walks the whole platform chain (a tenant's slice cannot be linked without the entries between), recomputing
    /// every hash and link; for a tenant it counts that tenant's entries and reports the first broken link, wherever it is.
    /// </summary>
    public static async Task<AuditVerification> VerifyAsync<T>(IQuerySession session, Guid? tenant, CancellationToken ct) where T : AuditEntry
    {
        var previous = AuditEntry.Genesis;
        long expected = 1, counted = 0;
        long? broken = null;
        while (true)
        {
            var from = expected;
            var page = await session.Query<T>().Where(e => e.Id >= from).OrderBy(e => e.Id).Take(VerifyPage).ToListAsync(ct);
            foreach (var entry in page)
            {
                if (broken is null && (entry.Id != expected || entry.PreviousHash != previous || entry.ComputeHash() != entry.Hash))
                    broken = Math.Min(entry.Id, expected);
                if (tenant is null || entry.TenantId == tenant) counted++;
                previous = entry.Hash;
                expected = entry.Id + 1;
            }
            if (page.Count < VerifyPage) break;
        }
        return new AuditVerification(broken is null, (int)counted, broken, previous);
    }

    private static Guid? OptionalId(IResolveFieldContext ctx) =>
        ctx.GetArgument<string?>("tenantId") is { } id ? Ids.Parse(id, "Tenant") : null;

    private static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));
}
