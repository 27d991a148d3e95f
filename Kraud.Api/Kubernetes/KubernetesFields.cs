using GraphQL;
using Kraud.Api.Common;
using Kraud.Api.Gql;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Kubernetes;
using Kraud.Domain.Pods;
using Kraud.Projections.Kubernetes;
using Kraud.Projections.Pods;
using Marten;

namespace Kraud.Api.Kubernetes;

public sealed record NodePoolDto(string Name, int Nodes, int Cpu, int MemoryMiB, PodDto Pod);

public sealed record KubernetesClusterDto(
    Guid Id, string Name, Guid TenantId, string Version, string ControlPlaneZone, string State, string? Reason, PodDto ControlPlane,
    IReadOnlyList<NodePoolDto> NodePools, string CaCertificate, int Revision, DateTime CreatedAt, string? ApiEndpoint);

/// <summary>Managed Kubernetes: createKubernetesCluster, scaleNodePool, deleteKubernetesCluster, kubernetesClusters, kubernetesCluster, kubeconfig.</summary>
public static class KubernetesFields
{
    public static void Map(Fields fields)
    {
        fields.Mutation("createKubernetesCluster", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            var name = ctx.GetArgument<string>("name");
            var now = ctx.Now();
            var pools = ctx.GetArgument<List<Dictionary<string, object?>>>("nodePools").Select(p => new InputArgs(p))
                .Select(p => new NodePoolRequest(p.Required<string>("name"), p.Int("nodes") ?? 0, p.Int("cpu") ?? 0, p.Int("memoryMiB") ?? 0)).ToList();
            var zone = ctx.GetArgument<string>("controlPlaneZone");
            var zones = await ZoneNames.AllAsync(ctx.Service<IQuerySession>(), ctx.CancellationToken);
            if (!zones.Contains(zone)) throw DomainException.Validation($"controlPlaneZone '{zone}' is not a zone of this platform ({string.Join(", ", zones)}).");
            var (caCertificate, caKey) = ClusterCertificates.CreateCa(name, now);
            var command = new CreateKubernetesCluster(ctx.NewId(), principal.RequireTenant(), name, ctx.GetArgument<string>("version"), zone, pools,
                caCertificate, principal, now);
            await ctx.Invoke(new KubernetesRequest(command, CaKeyPem: caKey));
            return await LoadAsync(ctx, command.ClusterId);
        });
        fields.Mutation("scaleNodePool", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("clusterId"), "Kubernetes cluster");
            await ctx.Invoke(new KubernetesRequest(new ScaleNodePool(id, ctx.GetArgument<string>("pool"), ctx.GetArgument<int>("nodes"), ctx.Caller().Principal,
                ctx.Now()), ctx.GetArgument<int?>("expectedRevision")));
            return await LoadAsync(ctx, id);
        });
        fields.Mutation("deleteKubernetesCluster", async ctx =>
        {
            var id = Ids.Parse(ctx.GetArgument<string>("id"), "Kubernetes cluster");
            await ctx.Invoke(new KubernetesRequest(new DeleteKubernetesCluster(id, ctx.Caller().Principal, ctx.Now())));
            return await LoadAsync(ctx, id);
        });

        fields.Mutation("revokeKubeconfig", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (principal.Role != Role.Admin) throw DomainException.Forbidden("Only an ADMIN of the cluster's tenant revokes its client certificates.");
            var id = Ids.Parse(ctx.GetArgument<string>("clusterId"), "Kubernetes cluster");
            await ctx.Invoke(new KubernetesRequest(new RevokeKubeconfig(id, ctx.GetArgument<string>("serialNumber").ToUpperInvariant(), principal, ctx.Now())));
            return await LoadAsync(ctx, id);
        });
        fields.Query("kubernetesClusters", async ctx =>
        {
            var principal = ctx.ResourceReader();
            var query = ctx.Service<IQuerySession>().Query<KubernetesClusterView>().AsQueryable();
            if (principal.TenantId is { } tenant) query = query.Where(c => c.TenantId == tenant);
            var views = await query.ToListAsync(ctx.CancellationToken);
            var pods = await ctx.PodViewsAsync(views.SelectMany(v => v.Cluster.PodIds));
            return views.OrderBy(v => v.Cluster.CreatedAt).ThenBy(v => v.Id).Select(v => Dto(v, pods, ApiBase(ctx))).ToList();
        });
        fields.Query("kubernetesCluster", async ctx =>
        {
            var principal = ctx.ResourceReader();
            if (!Guid.TryParse(ctx.GetArgument<string>("id"), out var id)) return null;
            var view = await ctx.Service<IQuerySession>().LoadAsync<KubernetesClusterView>(id, ctx.CancellationToken);
            if (view is null || (principal.TenantId is { } tenant && view.TenantId != tenant)) return null;
            return Dto(view, await ctx.PodViewsAsync(view.Cluster.PodIds), ApiBase(ctx));
        });
        fields.Query("kubeconfig", async ctx =>
        {
            var principal = ctx.Caller().Principal;
            if (principal.Role != Role.Admin)
                throw DomainException.Forbidden("A kubeconfig carries cluster-admin credentials: only an ADMIN token of the cluster's tenant gets one.");
            var id = Ids.Parse(ctx.GetArgument<string>("clusterId"), "Kubernetes cluster");
            var session = ctx.Service<IQuerySession>();
            var view = await session.LoadAsync<KubernetesClusterView>(id, ctx.CancellationToken);
            if (view is null || view.TenantId != principal.TenantId) throw DomainException.NotFound("Kubernetes cluster", id);
            var caKey = await session.LoadAsync<ClusterCaKey>(id, ctx.CancellationToken) ?? throw DomainException.NotFound("Kubernetes cluster", id);
            var apiBase = ctx.Service<ClusterApi.KubernetesApiListener>().BaseAddress
                          ?? throw new DomainException(ErrorCode.Precondition,
                              "This Kraud serves no Kubernetes API (Kubernetes:ApiUrl is not set), so a kubeconfig would name no server.");
            var now = ctx.Now();
            var client = ClusterCertificates.IssueClient(view.Cluster.CaCertificatePem, caKey.KeyPem, principal.Actor, "system:masters", now);
            // Recorded first: if the cluster is being deleted the command is refused and no credentials leave.
            await ctx.Invoke(new KubernetesRequest(new IssueKubeconfig(id, principal.Actor, client.SerialNumber, client.NotAfter, principal, now)));
            return Kubeconfig.Render(view.Cluster, client, apiBase);
        });
    }

    private static async Task<KubernetesClusterDto> LoadAsync(IResolveFieldContext ctx, Guid id)
    {
        var view = await ctx.Service<IQuerySession>().LoadAsync<KubernetesClusterView>(id, ctx.CancellationToken)
            ?? throw DomainException.NotFound("Kubernetes cluster", id);
        return Dto(view, await ctx.PodViewsAsync(view.Cluster.PodIds), ApiBase(ctx));
    }

    private static Uri? ApiBase(IResolveFieldContext ctx) => ctx.Service<ClusterApi.KubernetesApiListener>().BaseAddress;

    private static KubernetesClusterDto Dto(KubernetesClusterView view, IReadOnlyDictionary<Guid, PodView> pods, Uri? apiBase)
    {
        var c = view.Cluster;
        PodDto Pod(Guid id) => pods.TryGetValue(id, out var p) ? PodDto.From(p) : throw new InvalidOperationException($"Pod {id} of cluster {c.Id} is missing.");
        var parts = c.NodePools.Select(p => new PartsHealth.Part($"node pool {p.Name}", pods.GetValueOrDefault(p.PodId)?.Pod))
            .Prepend(new PartsHealth.Part("control plane", pods.GetValueOrDefault(c.ControlPlanePodId)?.Pod)).ToList();
        var (state, reason) = PartsHealth.Of(parts, c.Deleting);
        return new KubernetesClusterDto(c.Id, c.Name, c.TenantId, c.Version, c.ControlPlaneZone, state, reason, Pod(c.ControlPlanePodId),
            c.NodePools.Select(p => new NodePoolDto(p.Name, p.Nodes, p.Cpu, p.MemoryMiB, Pod(p.PodId))).ToList(), c.CaCertificatePem, view.Version,
            c.CreatedAt.UtcDateTime, Kubeconfig.Server(c, apiBase));
    }
}
