using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;

namespace Kraud.Api.Replay;

/// <summary>
/// timeline(resourceId, from, to): every event of a resource and of what it caused, in log order. A tenant's token sees
/// the events stamped with its tenant only; operators and platform auditors see all.
/// </summary>
public static class TimelineQuery
{
    public static void Map(Fields fields) => fields.Query("timeline", async ctx =>
    {
        var id = Ids.Parse(ctx.GetArgument<string>("resourceId"), "Resource");
        await ctx.Service<ArchiveBoundary>().RequireFromAsync(ctx.Utc("from"), id, ctx.Caller().Principal.TenantId, $"The timeline of {id}",
            ctx.CancellationToken);
        var events = await ctx.Service<EventLog>().CausalClosureAsync(id, ctx.Utc("from"), ctx.Utc("to"), ctx.CancellationToken);
        return VisibleTo(ctx.Caller().Principal, events);
    });

    public static IReadOnlyList<EventRecord> VisibleTo(Principal principal, IReadOnlyList<EventRecord> events) =>
        principal.TenantId is { } tenant ? events.Where(e => e.Tenant == tenant.ToString()).ToList() : events;
}
