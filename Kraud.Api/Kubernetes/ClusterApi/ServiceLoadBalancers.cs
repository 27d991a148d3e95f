using System.Text.Json.Nodes;
using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Ingresses;
using Kraud.Domain.KubernetesApi;
using Kraud.Projections.Ingresses;
using Kraud.Projections.KubernetesApi;
using Kraud.Projections.Pods;
using Marten;
using Wolverine;
using Wolverine.Runtime;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// A Service of type LoadBalancer's managed ingress, as it should be now: its host, and the route to the pod of the
/// Deployment the Service selects (its current ReplicaSet's Kraud pod), or no route while no Deployment is selected.
/// </summary>
/// <param name="Route">Null: nothing to route to (yet); an ingress that exists keeps its last route, one that does not waits.</param>
/// <param name="Delete">The Service is no longer of type LoadBalancer: its ingress goes.</param>
public sealed record SyncServiceLoadBalancer(Guid ServiceId, Guid IngressId, Guid TenantId, string IngressName, IngressRoute? Route, bool Delete,
    ResourceOwner Owner, DateTimeOffset At);

public static class SyncServiceLoadBalancerHandler
{
    public static readonly Principal Controller = Principal.System("service-controller");

    public static async Task Handle(SyncServiceLoadBalancer sync, IDocumentSession session, IMessageContext context, IIngresses ingresses)
    {
        var existing = await session.LoadAsync<IngressView>(sync.IngressId);
        var live = existing is { Deleted: false, Ingress.Exists: true };
        if (sync.Delete)
        {
            if (live) await ingresses.DeleteAsync(session, context, new DeleteIngress(sync.IngressId, Controller, sync.At, OnBehalfOf: sync.ServiceId));
            return;
        }
        if (sync.Route is not { } route) return;
        if (!live)
        {
            // A Service deleted meanwhile took its ingress id with it (the id names the Service's uid): never re-create one.
            if (existing is not null) return;
            await ingresses.CreateAsync(session, context, new CreateIngress(sync.IngressId, sync.TenantId, sync.IngressName, IngressKind.Managed, [route], null,
                null, null, [], false, 1, Controller, sync.At, sync.Owner));
        }
        else if (existing!.Ingress.Routes is not [var current] || current != route)
            await ingresses.SetRoutesAsync(session, context, new SetIngressRoutes(sync.IngressId, [route], Controller, sync.At, OnBehalfOf: sync.ServiceId));
    }

    /// <summary>A deleted Service's ingress goes in the Service's own transaction.</summary>
    public static async Task DeleteForServiceAsync(IDocumentSession session, IMessageContext context, IIngresses ingresses, KubeObject service, DateTimeOffset at)
    {
        var id = KubeNames.LoadBalancerIngressId(service.Id, service.Uid);
        if (await session.LoadAsync<IngressView>(id) is { Deleted: false, Ingress.Exists: true })
            await ingresses.DeleteAsync(session, context, new DeleteIngress(id, Controller, at, OnBehalfOf: service.Id));
    }
}

/// <summary>
/// The service controller's load balancer part: each Service of type LoadBalancer gets a Kraud managed ingress (2N+1
/// across two zones) under the platform's ingress domain, routing to the pod of the Deployment it selects, and follows
/// that Deployment's rollouts to its newest ReplicaSet. Like a cloud's load balancer, it comes a moment after the Service.
/// </summary>
public sealed class ServiceLoadBalancers(IDocumentStore store, IWolverineRuntime runtime, TimeProvider time, ILogger<ServiceLoadBalancers> logger)
    : PeriodicRound(time, logger)
{
    public const string OwnerKind = "kubernetes service";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(1);
    protected override string FailureMessage => "Reconciling the load balancers of Kubernetes Services failed this round";

    protected override async Task RoundAsync(CancellationToken ct)
    {
        await using var session = store.QuerySession();
        var services = await session.Query<KubeObjectView>().Where(v => v.Kind == "Service").ToListAsync(ct);
        if (services.Count == 0) return;
        var clusterIds = services.Select(s => s.ClusterId).Distinct().ToArray();
        var deployments = await session.Query<KubeObjectView>().Where(v => v.Kind == "Deployment" && v.ClusterId.IsOneOf(clusterIds)).ToListAsync(ct);
        var ingressIds = services.Select(s => KubeNames.LoadBalancerIngressId(s.Id, s.Object.Uid)).ToArray();
        var ingresses = (await session.LoadManyAsync<IngressView>(ct, ingressIds)).ToDictionary(i => i.Id);
        var clusterNames = new Dictionary<Guid, string>();
        foreach (var view in services)
        {
            var ingressId = KubeNames.LoadBalancerIngressId(view.Id, view.Object.Uid);
            var manifest = JsonNode.Parse(view.Object.Manifest)!;
            var live = ingresses.TryGetValue(ingressId, out var ingress) && ingress is { Deleted: false, Ingress.Exists: true };
            var isLoadBalancer = KubeJson.Text(manifest, "spec.type") == "LoadBalancer";
            if (!isLoadBalancer && !live) continue;
            var route = isLoadBalancer ? await RouteAsync(session, view, manifest, deployments, ct) : null;
            if (isLoadBalancer && (route is null || (live && ingress!.Ingress.Routes is [var current] && current == route))) continue;
            if (!clusterNames.TryGetValue(view.ClusterId, out var clusterName))
                clusterNames[view.ClusterId] = clusterName = (await Streams.LoadAsync<Domain.Kubernetes.KubernetesCluster>(session, view.ClusterId, ct)).State.Name;
            var sync = new SyncServiceLoadBalancer(view.Id, ingressId, view.TenantId, KubeNames.LoadBalancerIngressName(clusterName, view.Namespace, view.Name),
                route, Delete: !isLoadBalancer, new ResourceOwner(OwnerKind, view.Id, $"{view.Namespace}/{view.Name}"), Time.GetUtcNow());
            try
            {
                await new MessageBus(runtime).InvokeAsync(sync, ct);
            }
            catch (Exception e) when (Gql.ErrorCodes.Map(e) is not null)
            {
                // Refused (a pod gone meanwhile, no ingress host free): the next round tries again; the reason is in the log.
                logger.LogInformation("The load balancer of Service {Namespace}/{Name} waits: {Reason}", view.Namespace, view.Name, e.Message);
            }
        }
    }

    /// <summary>
    /// The route to the Deployment the Service's selector picks: its current ReplicaSet's pod, on the Service's first port's
    /// targetPort (a number, or a container port's name in the Deployment's template).
    /// </summary>
    private static async Task<IngressRoute?> RouteAsync(IQuerySession session, KubeObjectView service, JsonNode manifest,
        IReadOnlyList<KubeObjectView> deployments, CancellationToken ct)
    {
        if (manifest["spec"]?["selector"] is not JsonObject { Count: > 0 } selector) return null;
        if (manifest["spec"]?["ports"] is not JsonArray { Count: > 0 } ports) return null;
        foreach (var deployment in deployments.Where(d => d.ClusterId == service.ClusterId && d.Namespace == service.Namespace).OrderBy(d => d.Name, StringComparer.Ordinal))
        {
            if (deployment.Object.CurrentReplicaSet is not { } current) continue;
            var template = JsonNode.Parse(current.Template);
            var labels = template?["metadata"]?["labels"] as JsonObject;
            if (labels is null || selector.Any(s => labels[s.Key]?.GetValue<string>() != s.Value?.GetValue<string>())) continue;
            if (await session.LoadAsync<PodView>(current.PodId, ct) is null) continue;
            var port = ports[0]!;
            var target = port["targetPort"] ?? port["port"];
            int? number = target?.GetValueKind() == System.Text.Json.JsonValueKind.Number ? target.GetValue<int>() : null;
            if (number is null && target?.GetValueKind() == System.Text.Json.JsonValueKind.String)
            {
                var text = target.GetValue<string>();
                number = int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var parsed) ? parsed
                    : (template?["spec"]?["containers"] as JsonArray ?? []).SelectMany(c => c?["ports"] as JsonArray ?? [])
                    .Where(p => p?["name"]?.GetValue<string>() == text).Select(p => p?["containerPort"]?.GetValue<int>()).FirstOrDefault();
            }
            number ??= port["port"]?.GetValue<int>();
            if (number is not { } targetPort) return null;
            return new IngressRoute(KubeNames.LoadBalancerHost(service.ClusterId, service.Namespace, service.Name), "/", current.PodId, targetPort);
        }
        return null;
    }
}
