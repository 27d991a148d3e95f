using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Compliance;
using Kraud.Projections.Compliance;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

namespace Kraud.Api.Compliance;

public sealed record DatacenterAccessDto(Guid Id, string Person, DateTime At, string Datacenter, string Reason, string CameraSnapshotSha256)
{
    public static DatacenterAccessDto From(DatacenterAccessView v) => new(v.Id, v.Person, v.At.UtcDateTime, v.Datacenter, v.Reason, v.CameraSnapshotSha256);
}

/// <summary>recordDatacenterAccess (OPERATOR) and datacenterAccessLog (operators and platform auditors).</summary>
public static class DatacenterAccessFields
{
    public static void Map(Fields fields)
    {
        fields.Mutation("recordDatacenterAccess", async ctx =>
        {
            var input = ctx.Input("input");
            var at = input.Required<DateTime>("at");
            var command = new RecordDatacenterAccess(ctx.NewId(), input.Required<string>("person"), new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc)),
                input.Required<string>("datacenter"), input.Required<string>("reason"), input.Required<string>("cameraSnapshotSha256"),
                await KnownDatacentersAsync(ctx.Service<IQuerySession>(), ctx.CancellationToken), ctx.Caller().Principal, ctx.Now());
            await ctx.Invoke(command);
            var view = await ctx.Service<IQuerySession>().LoadAsync<DatacenterAccessView>(command.AccessId, ctx.CancellationToken);
            return DatacenterAccessDto.From(view!);
        });
        fields.Query("datacenterAccessLog", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (!principal.ReadsAllTenants)
                throw DomainException.Forbidden("The physical access log is for operators and platform auditors.");
            var entries = await QueryAsync(ctx.Service<IQuerySession>(), ctx.GetArgument<string?>("datacenter"), ctx.Utc("from"), ctx.Utc("to"), ctx.CancellationToken);
            return entries.Select(DatacenterAccessDto.From).ToList();
        });
    }

    public static async Task<IReadOnlyList<DatacenterAccessView>> QueryAsync(IQuerySession session, string? datacenter, DateTimeOffset? from, DateTimeOffset? to,
        CancellationToken ct)
    {
        var query = session.Query<DatacenterAccessView>().AsQueryable();
        if (datacenter is not null) query = query.Where(a => a.Datacenter == datacenter);
        if (from is { } f) query = query.Where(a => a.At >= f);
        if (to is { } t) query = query.Where(a => a.At < t);
        return await query.OrderBy(a => a.At).ToListAsync(ct);
    }

    private static async Task<IReadOnlyCollection<string>> KnownDatacentersAsync(IQuerySession session, CancellationToken ct) =>
        (await session.Query<HostView>().ToListAsync(ct)).Select(h => h.Host.Datacenter).Distinct().ToList();
}

public static class RecordDatacenterAccessHandler
{
    public static void Handle(RecordDatacenterAccess command, IDocumentSession session, IMessageContext context)
    {
        var events = DatacenterAccessDecider.Decide(command);
        session.Stamp(context, command.By, null, nameof(RecordDatacenterAccess));
        session.Events.StartStream(command.AccessId, events);
    }
}
