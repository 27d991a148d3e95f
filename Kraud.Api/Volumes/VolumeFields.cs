using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Volumes;
using Kraud.Projections.Replay;
using Kraud.Projections.Volumes;
using Marten;

namespace Kraud.Api.Volumes;

public sealed record VolumeConnection(IReadOnlyList<VolumeDto> Nodes, PageInfo PageInfo, int TotalCount);

/// <summary>createVolume, attachVolume, detachVolume, deleteVolume, scrubVolume, volume and volumes. Tenants see their own; operators all; auditors none.</summary>
public static class VolumeFields
{
    public static void Map(Fields fields)
    {
        fields.Mutation("createVolume", ctx =>
        {
            var caller = ctx.Caller().Principal;
            var input = ctx.Input("input");
            return Send(ctx, new CreateVolume(ctx.NewId(), caller.RequireTenant(), input.Required<string>("name"),
                Enums.Parse<VolumeClass>(input.Required<string>("class"), "class"), input.Int("sizeGiB") ?? 0, input.Optional<string>("zone"), caller,
                ctx.Now()), null);
        });
        fields.Mutation("attachVolume", ctx => Send(ctx, new AttachVolume(VolumeId(ctx, "volumeId"), PodId(ctx), null,
            ctx.GetArgument<string>("mountPath"), ctx.GetArgument<bool?>("readOnly") ?? false, ctx.Caller().Principal, ctx.Now()), Expected(ctx)));
        fields.Mutation("detachVolume", ctx =>
            Send(ctx, new DetachVolume(VolumeId(ctx, "volumeId"), PodId(ctx), ctx.Caller().Principal, ctx.Now()), Expected(ctx)));
        fields.Mutation("scrubVolume", ctx => Send(ctx, new ScrubVolume(VolumeId(ctx, "id"), ctx.Caller().Principal, ctx.Now()), null));
        fields.Mutation("deleteVolume", ctx => Send(ctx, new DeleteVolume(VolumeId(ctx, "id"), ctx.Caller().Principal, ctx.Now()), Expected(ctx)));

        fields.Query("volume", async ctx =>
        {
            var principal = ctx.ResourceReader();
            if (!Guid.TryParse(ctx.GetArgument<string>("id"), out var id)) return null;
            var session = ctx.Service<IQuerySession>();
            VolumeDto? volume;
            if (ctx.GetArgument<DateTime?>("asOf") is { } asOf)
            {
                await ArchiveBoundary.RequireStreamAtAsync(ctx, id, asOf, "Volume");
                var (state, version) = await ctx.Service<PlatformCheckpoints>()
                    .StreamAtAsync<Volume>(id, new DateTimeOffset(DateTime.SpecifyKind(asOf, DateTimeKind.Utc)), ctx.CancellationToken);
                volume = state.Exists ? VolumeDto.From(state, version) : null;
            }
            else
            {
                var view = await session.LoadAsync<VolumeView>(id, ctx.CancellationToken);
                volume = view is null ? null : VolumeDto.From(view);
            }
            return volume is not null && (principal.TenantId is null || principal.TenantId == volume.TenantId) ? volume : null;
        });

        fields.On("Volume", "fileServer", async ctx =>
        {
            var volume = (VolumeDto)ctx.Source!;
            var server = await ctx.Service<IQuerySession>().LoadAsync<Kraud.Projections.Pods.PodView>(FileServer.PodId(volume.Id), ctx.CancellationToken);
            if (server is null || server.TenantId != volume.TenantId) return null;
            var running = server.Pod.Live.FirstOrDefault(i => i.Phase == Kraud.Domain.Pods.VmPhase.Running);
            return new FileServerDto(server.Id, Enums.Name(server.State), FileServer.Address(server.Pod) ?? FileServer.Addressed(server.Pod), running?.HostId,
                server.Pod.NextGeneration(0));
        });

        fields.Query("volumes", async ctx =>
        {
            var principal = ctx.ResourceReader();
            var query = ctx.Service<IQuerySession>().Query<VolumeView>().Where(v => v.State != VolumeState.Deleted);
            if (principal.TenantId is { } tenant) query = query.Where(v => v.TenantId == tenant);
            var page = await CreationOrderPages.ReadAsync(ctx, query, "volume", v => v.CreatedTicks, v => v.Id);
            return new VolumeConnection(page.Nodes.Select(VolumeDto.From).ToList(), page.PageInfo, page.TotalCount);
        });
    }

    private static Guid VolumeId(IResolveFieldContext ctx, string argument) => Ids.Parse(ctx.GetArgument<string>(argument), "Volume");

    private static Guid PodId(IResolveFieldContext ctx) => Ids.Parse(ctx.GetArgument<string>("podId"), "Pod");

    private static int? Expected(IResolveFieldContext ctx) => ctx.GetArgument<int?>("expectedVersion");

    private static async Task<VolumeDto> Send(IResolveFieldContext ctx, VolumeCommand command, int? expectedVersion)
    {
        await ctx.Invoke(new VolumeRequest(command, ctx.Caller().Principal, expectedVersion));
        var view = await ctx.Service<IQuerySession>().LoadAsync<VolumeView>(command.VolumeId, ctx.CancellationToken)
            ?? throw DomainException.NotFound("Volume", command.VolumeId);
        return VolumeDto.From(view);
    }

}
