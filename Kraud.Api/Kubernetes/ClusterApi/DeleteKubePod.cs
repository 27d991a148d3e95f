using Kraud.Api.Common;
using Kraud.Domain.Access;
using Kraud.Domain.Pods;
using Marten;
using Wolverine;

namespace Kraud.Api.Kubernetes.ClusterApi;

/// <summary>
/// kubectl delete pod: a Deployment's pod is one microVM of its ReplicaSet's Kraud pod. Deleting it replaces it, as a
/// ReplicaSet controller does: that microVM stops and the replica runs again as a new one (a new pod name), placed by the
/// scheduler. The Deployment's own history does not change; the Kraud pod's stream records the eviction and who asked.
/// </summary>
/// <param name="DeploymentId">The Deployment's stream: the owner of the ReplicaSet's pod, on whose behalf the replica is replaced.</param>
public sealed record DeleteKubePod(Guid DeploymentId, Guid PodId, Guid VmId, string PodName, Principal By, DateTimeOffset At);

public static class DeleteKubePodHandler
{
    public static async Task Handle(DeleteKubePod command, IDocumentSession session, IMessageContext context, IPods pods)
    {
        command.By.RequireWriter();
        await pods.RequestAsync(session, context, new EvictPodReplica(command.PodId, command.VmId,
            $"Kubernetes pod {command.PodName} was deleted by {command.By.Actor}; its ReplicaSet runs a new one", command.By, command.At,
            OnBehalfOf: command.DeploymentId), command.By);
    }
}
