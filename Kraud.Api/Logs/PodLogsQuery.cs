using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Logs;

/// <summary>podLogs: the stdout and stderr lines of a pod's microVMs, oldest first, as their hosts stamped them.</summary>
public static class PodLogsQuery
{
    public static void Map(Fields fields) => fields.Query("podLogs", async ctx =>
    {
        var podId = Common.Ids.Parse(ctx.GetArgument<string>("podId"), "Pod");
        var tail = ctx.GetArgument<int?>("tail");
        if (tail is < 0) throw DomainException.Validation("tail must not be negative.");
        var pod = await VisiblePodAsync(ctx.Service<IQuerySession>(), ctx.ResourceReader(), podId, ctx.CancellationToken);
        return await ctx.Service<WorkloadLogReader>().ReadAsync(pod.TenantId, pod.Id, ctx.GetArgument<int?>("replica"), tail,
            ctx.GetArgument<DateTime?>("since"), 0, ctx.CancellationToken);
    });

    /// <summary>The pod, if the caller may read it: its own tenant's (operators: any). Another tenant's pod does not exist for the caller.</summary>
    public static async Task<PodView> VisiblePodAsync(IQuerySession session, Principal principal, Guid podId, CancellationToken ct)
    {
        var pod = await session.LoadAsync<PodView>(podId, ct);
        return pod is not null && (principal.TenantId is null || principal.TenantId == pod.TenantId) ? pod : throw DomainException.NotFound("Pod", podId);
    }
}
