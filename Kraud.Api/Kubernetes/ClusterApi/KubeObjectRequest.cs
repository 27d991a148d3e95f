using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Common;
using Kraud.Domain.KubernetesApi;
using Kraud.Domain.Pods;
using Kraud.Projections.KubernetesApi;
using Marten;
using Wolverine;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// A write to a cluster's Kubernetes API as a Kraud command.
/// </summary>
/// <param name="ExpectedVersion">The object's stream version the client's resourceVersion stood for (stale: 409).</param>
/// <param name="Template">A Deployment's pod template as a Kraud pod (its name is the ReplicaSet's, given when one is made).</param>
/// <param name="SecretSealed">A Secret's values, sealed: stored beside the object, never in its events.</param>
/// <param name="Claim">A new PersistentVolumeClaim's volume: what the Kraud volume is made of.</param>
public sealed record KubeObjectRequest(KubeObjectCommand Command, int? ExpectedVersion = null, PodSpec? Template = null, string? SecretSealed = null,
    ClaimVolume? Claim = null);

/// <summary>The Kraud volume a PersistentVolumeClaim asks for (its storageClassName is the class).</summary>
public sealed record ClaimVolume(Domain.Volumes.VolumeClass Class, int SizeGiB, string Zone, string ClusterName);

public static class KubeObjectRequestHandler
{
    public const string DeploymentOwner = "kubernetes deployment";

    public static async Task Handle(KubeObjectRequest request, IDocumentSession session, IMessageContext context, IPods pods, IIngresses ingresses, IVolumes volumes)
    {
        var command = request.Command;
        command.By.RequireWriter();
        if (command is DeleteKubeObject { Key.Kind: "Namespace", Finalize: true } deleteNamespace)
        {
            // The namespace controller's last step: what the Terminating namespace still holds goes with it, in one transaction.
            var inside = await session.Query<KubeObjectView>()
                .Where(v => v.ClusterId == command.Key.ClusterId && v.Namespace == deleteNamespace.Key.Name).ToListAsync();
            foreach (var view in inside)
                await ExecuteAsync(session, context, pods, ingresses, volumes, new DeleteKubeObject(new KubeObjectKey(view.ClusterId, view.Kind, view.Namespace, view.Name), command.By,
                    command.At), null, null, null);
        }
        await ExecuteAsync(session, context, pods, ingresses, volumes, command, request.ExpectedVersion, request.Template, request.SecretSealed, request.Claim);
    }

    /// <summary>
    /// A deleted cluster takes its Kubernetes objects with it, in the cluster's own transaction: its Deployments' pods stop
    /// (nobody could reach them through the cluster's API again), its sealed Secrets go. Namespaces go last, finalized at once.
    /// </summary>
    public static async Task DeleteClusterObjectsAsync(IDocumentSession session, IMessageContext context, IPods pods, IIngresses ingresses, IVolumes volumes, Guid clusterId, Principal by,
        DateTimeOffset at)
    {
        var views = await session.Query<KubeObjectView>().Where(v => v.ClusterId == clusterId).ToListAsync();
        foreach (var view in views.OrderBy(v => v.Kind == KubeKinds.Namespace.Kind))
            await ExecuteAsync(session, context, pods, ingresses, volumes, new DeleteKubeObject(new KubeObjectKey(clusterId, view.Kind, view.Namespace, view.Name), by, at,
                Finalize: view.Kind == KubeKinds.Namespace.Kind), null, null, null);
    }

    private static async Task ExecuteAsync(IDocumentSession session, IMessageContext context, IPods pods, IIngresses ingresses, IVolumes volumes, KubeObjectCommand command, int? expectedVersion, PodSpec? template,
        string? secretSealed, ClaimVolume? claim = null)
    {
        var id = command.Key.StreamId;
        var loaded = await Streams.FetchForWritingAsync<KubeObject>(session, id);
        var before = loaded.State;
        if (before.Exists && before.ClusterId != command.Key.ClusterId) throw new InvalidOperationException($"Stream {id} belongs to another cluster.");
        Streams.Guard(command.Key.Kind, id, before.Exists, before.TenantId, loaded.Version, command.By, expectedVersion: null);
        // A client's resourceVersion names the stream version it read; Kubernetes clients know this message for a stale one.
        if (expectedVersion is { } expected && expected != loaded.Version)
            throw DomainException.Conflict("the object has been modified; please apply your changes to the latest version and try again");
        var events = KubeObjectDecider.Decide(command, before);
        var by = command.By;
        if (secretSealed is not null && command is PutKubeObject put)
            session.Store(new KubeSecretData { Id = id, TenantId = put.TenantId, ClusterId = command.Key.ClusterId, Sealed = secretSealed });
        if (events.Count == 0) return;
        var after = events.Aggregate(before, (s, e) => s.Evolve(e));
        var stamp = AuditStamp.For(context, by, after.TenantId, command is PutKubeObject { Mode: PutMode.Create } ? "CreateKubernetesObject"
            : command is PutKubeObject ? "UpdateKubernetesObject" : command is DeleteKubeObject ? "DeleteKubernetesObject" : command.GetType().Name,
            scope: id.ToString());
        Streams.Append(loaded, events, stamp);

        var owner = new ResourceOwner(DeploymentOwner, id, $"{command.Key.Namespace}/{command.Key.Name}");
        foreach (var e in events)
            switch (e)
            {
                case KubeReplicaSetCreated created:
                    var spec = (template ?? throw new InvalidOperationException("A new ReplicaSet needs its pod template.")) with { Name = KubeNames.ReplicaSetPodName(created.Name, created.Revision) };
                    await pods.RequestAsync(session, context,
                        new CreatePod(created.PodId, after.TenantId, spec, created.Replicas, by, command.At, owner), by);
                    break;
                case KubeReplicaSetScaled scaled:
                    await pods.RequestAsync(session, context, new ScalePod(scaled.PodId, scaled.To, by, command.At, id), by);
                    break;
                case KubeReplicaSetRetired retired:
                    await pods.RequestAsync(session, context, new DeletePod(retired.PodId, by, command.At, id), by);
                    break;
                case KubeObjectDeleted when command.Key.Kind == KubeKinds.Secret.Kind:
                    session.Delete<KubeSecretData>(id);
                    break;
                case KubeObjectCreated { Kind: "PersistentVolumeClaim" } created:
                    // The claim's volume is made with it (Bound once the volume is HEALTHY); it is deleted once the claim is gone and
                    // no pod holds it any more (ClaimVolumeReclaimer), as a PersistentVolume of reclaimPolicy Delete.
                    var wanted = claim ?? throw new InvalidOperationException("A new PersistentVolumeClaim needs its volume.");
                    var volumeId = KubeNames.ClaimVolumeId(id, created.Uid);
                    await volumes.CreateAsync(session, context, new Domain.Volumes.CreateVolume(volumeId, created.TenantId,
                        KubeNames.ClaimVolumeName(wanted.ClusterName, created.Namespace, created.Name, created.Uid), wanted.Class, wanted.SizeGiB, wanted.Zone,
                        by, command.At), by);
                    session.Store(new KubeClaimVolume { Id = volumeId, TenantId = created.TenantId, ClusterId = created.ClusterId, ClaimId = id, ClaimUid = created.Uid });
                    break;
                case KubeObjectDeleted when command.Key.Kind == KubeKinds.Service.Kind:
                    await SyncServiceLoadBalancerHandler.DeleteForServiceAsync(session, context, ingresses, before, command.At);
                    break;
            }
    }
}
