using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Common;
using Kraud.Domain.Fleet;
using Kraud.HostRuntime.Configuration;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;

using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Fleet;

public static class RegisterHostField
{
    public static void Map(Fields fields) => fields.Mutation("registerHost", async ctx =>
    {
        var input = ctx.Input("input");
        var name = input.Required<string>("name");
        var command = new RegisterHost(Host.IdFor(name), name, input.Required<string>("zone"), ctx.Service<FleetOptions>().Datacenter,
            input.Required<string>("rack"), Enums.Parse<HostRole>(input.Required<string>("role"), "role"), input.Int("cpu") ?? 0,
            input.Int("memoryMiB") ?? 0, input.Int("nvmeGiB") ?? 0, input.Bool("sevSnp") ?? false, ctx.Caller().Principal, ctx.Now());
        await ctx.Invoke(command);
        return await HostQueries.LoadAsync(ctx, command.HostId);
    });
}

public static class RegisterHostHandler
{
    public static Task Handle(RegisterHost command, IDocumentSession session, IMessageContext context) => Apply(session, context, command);

    /// <summary>The host's stream starts, and its zone learns of it (the zone itself, or a new rack, on first sight).</summary>
    internal static async Task Apply(IDocumentSession session, IMessageContext context, RegisterHost command)
    {
        if (await session.Events.FetchStreamStateAsync(command.HostId) is not null)
            throw DomainException.Conflict($"Host {command.Name} is registered already.");
        var events = HostDecider.Decide(command, Host.Initial);
        var zoneId = Zone.IdFor(command.Zone);
        await Streams.LockAsync(session, [zoneId]);
        var zone = (await session.LoadAsync<ZoneView>(zoneId))?.Zone ?? Zone.Initial;
        var zoneEvents = ZoneDecider.ForHost(command, zone);
        session.Stamp(context, command.By, null, nameof(RegisterHost));
        session.Events.StartStream(command.HostId, events);
        if (!zone.Exists) session.Events.StartStream(zoneId, zoneEvents);
        else if (zoneEvents.Count > 0) session.Events.Append(zoneId, zoneEvents);
        session.Insert(new NameClaim { Id = NameClaim.For("host", command.Name), OwnerId = command.HostId });
        // A new INGRESS host may be the room a DEGRADED ingress waits for.
        if (command.Role == HostRole.Ingress) await context.PublishAsync(new RepairIngresses(command.Name));
        await context.PublishAsync(new HostHasRoom(command.HostId));
    }
}

