using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Common;
using Kraud.Projections.Audit;
using Marten;

namespace Kraud.Api.Audit;

public static class CommandRejectedHandler
{
    public const string Queue = "rejections";

    public static async Task Handle(CommandRejected rejected, IDocumentSession session)
    {
        var head = await session.LoadAsync<RejectionChainHead>(RejectionChainHead.Chain) ?? new RejectionChainHead();
        var entry = new RejectedCommandEntry
        {
            Id = head.LastEntry + 1, At = rejected.At, TenantId = rejected.TenantId, Actor = rejected.Actor, Action = rejected.Command,
            Outcome = $"rejected {rejected.Code}: {rejected.Reason}", CorrelationId = rejected.CorrelationId, PreviousHash = head.Hash,
        };
        entry.Hash = entry.ComputeHash();
        head.LastEntry = entry.Id;
        head.Hash = entry.Hash;
        session.Store(entry);
        session.Store(head);
    }
}

/// <summary>rejectedCommands and verifyRejectedCommands: the same readers and the same rules as the audit log.</summary>
public static class RejectedCommandFields
{
    public static void Map(Fields fields)
    {
        fields.Query("rejectedCommands", async ctx =>
        {
            var tenant = AuditReaderAccess.ScopeOf(ctx.Caller().Principal, ctx.GetArgument<string?>("tenantId") is { } id ? Ids.Parse(id, "Tenant") : null);
            var first = ctx.GetArgument<int?>("first") ?? 100;
            Names.RequireRange(first, 1, 1000, "first");
            var after = Cursor.DecodePosition(ctx.GetArgument<string?>("after"));
            var query = ctx.Service<IQuerySession>().Query<RejectedCommandEntry>().AsQueryable();
            if (tenant is { } t) query = query.Where(e => e.TenantId == t);
            return await AuditQueries.PageAsync(query, first, after, ctx.CancellationToken);
        });
        fields.Query("verifyRejectedCommands", async ctx =>
        {
            var tenant = AuditReaderAccess.ScopeOf(ctx.Caller().Principal, null);
            return await AuditQueries.VerifyAsync<RejectedCommandEntry>(ctx.Service<IQuerySession>(), tenant, ctx.CancellationToken);
        });
    }
}
