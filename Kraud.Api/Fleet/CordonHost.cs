using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Api.Pods;
using Kraud.Domain.Fleet;
using Kraud.Domain.Pods;
using Kraud.Projections.Fleet;
using Marten;
using Wolverine;
using Host = Kraud.Domain.Fleet.Host;

namespace Kraud.Api.Fleet;

/// <summary>
/// cordonHost, uncordonHost and drainHost: a cordoned host keeps what it runs and gets nothing new; a drained one also
/// has every replica moved off (each VM stopped, the replica placed elsewhere) and is cordoned once it is empty.
/// </summary>
public static class CordonHostFields
{
    public static void Map(Fields fields)
    {
        fields.Mutation("cordonHost", ctx => Send(ctx, id => new CordonHost(id, ctx.Caller().Principal, ctx.Now())));
        fields.Mutation("uncordonHost", ctx => Send(ctx, id => new UncordonHost(id, ctx.Caller().Principal, ctx.Now())));
        fields.Mutation("drainHost", ctx => Send(ctx, id => new DrainHost(id, ctx.Caller().Principal, ctx.Now())));
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
    public static async Task Handle(CordonHost command, IDocumentSession session, IMessageContext context) =>
        await Apply(session, context, command.HostId, command.By, nameof(CordonHost), host => HostDecider.Decide(command, host));

    public static async Task Handle(UncordonHost command, IDocumentSession session, IMessageContext context) =>
        await Apply(session, context, command.HostId, command.By, nameof(UncordonHost), host => HostDecider.Decide(command, host));

    public static async Task Handle(DrainHost command, IDocumentSession session, IMessageContext context)
    {
        var host = await Apply(session, context, command.HostId, command.By, nameof(DrainHost), host => HostDecider.Decide(command, host));
        if (host is null) return;
        foreach (var vm in host.Vms.Values.OrderBy(v => v.PodId))
            await PodStreams.ExecuteAsync(session, context,
                new RecordVmReport(vm.PodId, vm.VmId, command.HostId, new VmEvicted($"host {host.Name} is being drained"), command.At), command.By);
    }

    /// <summary>Decides and appends; returns the host as it was when something changed, else null.</summary>
    private static async Task<Host?> Apply(IDocumentSession session, IMessageContext context, Guid hostId, Principal by, string name,
        Func<Host, IReadOnlyList<object>> decide)
    {
        var view = await session.LoadAsync<HostView>(hostId);
        var events = decide(view?.Host ?? Host.Initial);
        if (events.Count == 0) return null;
        // Capacity events reach host streams without an expected version, so the stream, not the view, knows the version.
        var stream = await session.Events.FetchStreamStateAsync(hostId);
        session.Stamp(context, by, null, name);
        session.Events.Append(hostId, stream!.Version + events.Count, events);
        return view!.Host;
    }
}
