namespace Kraud.Domain.Common;

/// <summary>
/// What a resource belongs to when a product made it as one of its parts (a Kubernetes cluster's control plane or node
/// pool; an app's services, volumes and ingress). Only the owner changes or removes its parts, so a tenant's stray
/// command cannot leave an app or a cluster half there.
/// </summary>
public sealed record ResourceOwner(string Kind, Guid Id, string Name)
{
    public const string KubernetesCluster = "kubernetes cluster", App = "app", Volume = "volume";

    /// <summary>The refusal when someone else than the owner acts on its part.</summary>
    public DomainException Refuses(string part) =>
        new(ErrorCode.Precondition, $"{part} is part of {Kind} '{Name}' ({Id}): change it through the {Kind}.");
}
