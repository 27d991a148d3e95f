using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Fleet;
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
        var command = new RegisterHost(Host.IdFor(name), name, input.Required<string>("zone"), ctx.Service<FleetDatacenter>().Name,
            input.Required<string>("rack"), Enums.Parse<HostRole>(input.Required<string>("role"), "role"), input.Int("cpu") ?? 0,
            input.Int("memoryMiB") ?? 0, input.Int("nvmeGiB") ?? 0, input.Bool("sevSnp") ?? false, ctx.Caller().Principal, ctx.Now());
        await ctx.Invoke(command);
        return await HostQueries.LoadAsync(ctx, command.HostId);
    });
}

/// <summary>The datacenter this control plane's fleet stands in (FSN1-DC2 unless configured).</summary>
public sealed record FleetDatacenter(string Name);

public static class RegisterHostHandler
{
    public static void Handle(RegisterHost command, IDocumentSession session, IMessageContext context) => Apply(session, context, command);

    internal static void Apply(IDocumentSession session, IMessageContext context, RegisterHost command)
    {
        var events = HostDecider.Decide(command, Host.Initial);
        session.Stamp(context, command.By, null, nameof(RegisterHost));
        session.Events.StartStream(command.HostId, events);
        session.Insert(new NameClaim { Id = NameClaim.For("host", command.Name), OwnerId = command.HostId });
    }
}

