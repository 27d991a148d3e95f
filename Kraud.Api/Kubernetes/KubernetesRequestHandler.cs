using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.Kubernetes;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Kubernetes;

/// <param name="CaKeyPem">With a create only: the CA's private key, kept in a document of its own and never in an event.</param>
public sealed record KubernetesRequest(KubernetesCommand Command, int? ExpectedRevision = null, string? CaKeyPem = null) : ICommandRequest
{
    object ICommandRequest.Command => Command;
}

/// <summary>
/// Every cluster command: decide on the cluster's stream, then drive its parts through the pod path in the same
/// transaction (its pods are created, scaled and deleted on the cluster's behalf), so a cluster never exists without them.
/// </summary>
public static class KubernetesRequestHandler
{
    public static async Task Handle(KubernetesRequest request, IDocumentSession session, IMessageContext context, IPods pods, IIngresses ingresses, IVolumes volumes)
    {
        var command = request.Command;
        var by = command.By;
        by.RequireWriter();
        var loaded = await Streams.FetchForWritingAsync<KubernetesCluster>(session, command.ClusterId);
        var before = loaded.State;
        if (before.Exists && by.TenantId is { } tenant && before.TenantId != tenant) throw DomainException.NotFound("Kubernetes cluster", command.ClusterId);
        if (request.ExpectedRevision is { } expected && expected != loaded.Version)
            throw DomainException.Conflict($"Kubernetes cluster {command.ClusterId} is at revision {loaded.Version}, not {expected}: reload it and try again.");

        var events = KubernetesDecider.Decide(command, before);
        if (events.Count == 0) return;
        var after = events.Aggregate(before, (s, e) => s.Evolve(e));
        var stamp = AuditStamp.For(context, by, after.TenantId, command.GetType().Name, scope: command.ClusterId.ToString());
        Streams.Append(loaded, events, stamp);

        var claim = NameClaim.For("kubernetes", after.TenantId.ToString(), after.Name);
        switch (command)
        {
            case CreateKubernetesCluster:
                session.Insert(new NameClaim { Id = claim, OwnerId = after.Id });
                session.Store(new ClusterCaKey { Id = after.Id, KeyPem = request.CaKeyPem ?? throw new InvalidOperationException("A new cluster needs its CA key.") });
                foreach (var pod in KubernetesPlan.Pods(after, by, command.At)) await pods.RequestAsync(session, context, pod, by);
                break;
            case ScaleNodePool scale:
                var pool = after.NodePools.Single(p => p.Name == scale.Pool);
                await pods.RequestAsync(session, context, new ScalePod(pool.PodId, pool.Nodes, by, command.At, after.Id), by);
                break;
            case DeleteKubernetesCluster:
                session.Delete<NameClaim>(claim);
                session.Delete<ClusterCaKey>(after.Id);
                foreach (var podId in after.PodIds) await pods.RequestAsync(session, context, new DeletePod(podId, by, command.At, after.Id), by);
                await ClusterApi.KubeObjectRequestHandler.DeleteClusterObjectsAsync(session, context, pods, ingresses, volumes, after.Id, by, command.At);
                break;
        }
    }
}
