using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
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

/// <summary>
/// A look at a draining host: a microVM placed on it just as its drain began (the scheduler had read it READY) is
/// evicted by <see cref="FinishDrain"/>, which nothing else would send for it.
/// </summary>
public sealed record WatchDrain(Guid HostId)
{
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(2);
}

public static class CordonHostHandler
{
    public static async Task Handle(CordonHost command, IDocumentSession session, IMessageContext context) =>
        await HostStreams.DecideAsync(session, context, command.HostId, command.By, nameof(CordonHost), host => HostDecider.Decide(command, host));

    public static async Task Handle(UncordonHost command, IDocumentSession session, IMessageContext context) =>
        await HostStreams.DecideAsync(session, context, command.HostId, command.By, nameof(UncordonHost), host => HostDecider.Decide(command, host));

    public static async Task Handle(DrainHost command, IDocumentSession session, IMessageContext context, IPods pods)
    {
        if (await HostStreams.DecideAsync(session, context, command.HostId, command.By, nameof(DrainHost), host => HostDecider.Decide(command, host))
            is not { Before: var host }) return;
        await context.ScheduleAsync(new WatchDrain(command.HostId), WatchDrain.Every);
        foreach (var vm in host.Vms.Values.OrderBy(v => v.PodId))
            await pods.ExecuteAsync(session, context,
                new RecordVmReport(vm.PodId, vm.VmId, command.HostId, Evicted(host), command.At), command.By);
    }

    /// <summary>
    /// Ends a drain once the host is empty. Until then it evicts what is still there, which is a no-op for VMs already
    /// stopping but moves one the scheduler placed as the drain began (it had read the host as READY).
    /// </summary>
    public static async Task Handle(FinishDrain command, IDocumentSession session, IMessageContext context, IPods pods)
    {
        var by = Principal.System("fleet");
        Host? seen = null;
        if (await HostStreams.DecideAsync(session, context, command.HostId, by, "RecordHostDrained", host => HostDecider.Decide(command, seen = host)) is not null)
            return;
        if (seen is not { State: HostState.Draining } host) return;
        foreach (var vm in host.Vms.Values.OrderBy(v => v.PodId))
            await pods.ExecuteAsync(session, context, new RecordVmReport(vm.PodId, vm.VmId, command.HostId, Evicted(host), command.At), by);
    }

    /// <summary>Each look at a draining host schedules the next while the drain lasts.</summary>
    public static async Task Handle(WatchDrain watch, IDocumentSession session, IMessageContext context, TimeProvider time)
    {
        if (await session.LoadAsync<HostView>(watch.HostId) is not { State: HostState.Draining }) return;
        await context.PublishAsync(new FinishDrain(watch.HostId, time.GetUtcNow()));
        await context.ScheduleAsync(watch, WatchDrain.Every);
    }

    private static VmEvicted Evicted(Host host) => new($"host {host.Name} is being drained");
}
