using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Fleet;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Fleet;

/// <summary>cordonHost and uncordonHost: a cordoned host keeps what it runs and gets nothing new.</summary>
public static class CordonHostFields
{
    public static void Map(Fields fields)
    {
        fields.Mutation("cordonHost", ctx => Send(ctx, id => new CordonHost(id, ctx.Caller().Principal, ctx.Now())));
        fields.Mutation("uncordonHost", ctx => Send(ctx, id => new UncordonHost(id, ctx.Caller().Principal, ctx.Now())));
    }

    private static async Task<HostDto> Send(IResolveFieldContext ctx, Func<Guid, object> command)
    {
        var id = Ids.Parse(ctx.GetArgument<string>("id"), "Host");
        await ctx.Invoke(command(id));
        return await HostQueries.LoadAsync(ctx, id);
    }
}

public static class CordonHostHandler
{
    public static Task Handle(CordonHost command, IDocumentSession session, IMessageContext context) =>
        Apply(session, context, command.HostId, command.By, nameof(CordonHost), host => HostDecider.Decide(command, host));

    public static Task Handle(UncordonHost command, IDocumentSession session, IMessageContext context) =>
        Apply(session, context, command.HostId, command.By, nameof(UncordonHost), host => HostDecider.Decide(command, host));

    private static async Task Apply(IDocumentSession session, IMessageContext context, Guid hostId, Principal by, string name,
        Func<Host, IReadOnlyList<object>> decide)
    {
        var view = await session.LoadAsync<HostView>(hostId);
        var events = decide(view?.Host ?? Host.Initial);
        if (events.Count == 0) return;
        // Capacity events reach host streams without an expected version, so the stream, not the view, knows the version.
        var stream = await session.Events.FetchStreamStateAsync(hostId);
        session.Stamp(context, by, null, name);
        session.Events.Append(hostId, stream!.Version + events.Count, events);
    }
}
