using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;

namespace Kraud.Api.Replay;

/// <summary>
/// timeline(resourceId, from, to): every event of a resource and of what it caused, in log order. A tenant's token sees
/// the events stamped with its tenant only; operators and platform auditors see all. Once archived events left the log,
/// a timeline without `from` of a resource older than the boundary answers from the boundary on and says so (the
/// response's extensions, and timelineArchives names the archives that hold the rest); one from an earlier instant is
/// refused, since the log cannot answer that window whole.
/// </summary>
public static class TimelineQuery
{
    public static void Map(Fields fields)
    {
        fields.Query("timeline", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("resourceId"), "Resource");
            var boundary = ctx.Service<ArchiveBoundary>();
            var what = $"The timeline of {id}";
            var from = ctx.Utc("from");
            if (from is { } start) await boundary.RequireFromAsync(start, what, ctx.CancellationToken);
            else if (await boundary.TimelineStartAsync(id, ctx.Caller().Principal.TenantId, what, ctx.CancellationToken) is { } after)
            {
                from = after;
                var archives = await boundary.ArchivesOfAsync(id, null, ctx.Caller().Principal.TenantId, ctx.CancellationToken);
                // Not a field of the answer (the contract's timeline is a list): a client that reads extensions is told at
                // once, and timelineArchives answers the same as a field.
                ctx.SetOutputExtension($"archived.{ctx.FieldAst.Alias?.Name.StringValue ?? "timeline"}", new Dictionary<string, object?>
                {
                    ["answersAfter"] = after.UtcDateTime,
                    ["archives"] = archives.Select(a => a.File).ToList(),
                    ["message"] = $"The log answers the timeline of {id} after {after.UtcDateTime:O}: its earlier events, and those of what they caused, " +
                                  $"are in {(archives.Count == 1 ? "archive " : "archives ")}{string.Join(", ", archives.Select(a => a.File))} " +
                                  "(`kraud audit verify-archive FILE` proves each).",
                });
            }
            var events = await ctx.Service<EventLog>().CausalClosureAsync(id, from, ctx.Utc("to"), ctx.CancellationToken);
            return VisibleTo(ctx.Caller().Principal, events);
        });

        fields.Query("timelineArchives", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("resourceId"), "Resource");
            var archives = await ctx.Service<ArchiveBoundary>().ArchivesOfAsync(id, ctx.Utc("from"), ctx.Caller().Principal.TenantId, ctx.CancellationToken);
            return archives.Select(a => EventArchiveDto.From(a, 0)).ToList();
        });
    }

    public static IReadOnlyList<EventRecord> VisibleTo(Principal principal, IReadOnlyList<EventRecord> events) =>
        principal.TenantId is { } tenant ? events.Where(e => e.Tenant == tenant.ToString()).ToList() : events;
}
