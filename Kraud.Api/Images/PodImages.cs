using System.Runtime.CompilerServices;
using Kraud.Api.Common;
using Kraud.Domain.Common;
using Kraud.Domain.HostProtocol;
using Kraud.Domain.Images;
using Kraud.Domain.Pods;
using Kraud.HostRuntime.Images;
using Marten;

namespace Kraud.Api.Images;

/// <summary>
/// createPod's image: the reference resolved once, with the tenant's credential for its registry, to the linux/amd64
/// manifest digest every microVM of the pod will run (scale, restart and reschedules never ask the registry again). The
/// spec is checked first, so bad input never costs a round trip. An image, repository or tag the registry does not have
/// is VALIDATION, a registry that cannot be reached PRECONDITION; either way nothing is appended.
/// </summary>
public sealed class PodImages(ImageResolver resolver, RegistryCredentials credentials) : IPodImages
{
    /// <summary>The credential each pod of a session was resolved with, for <see cref="ConfirmAsync"/> in the same session.</summary>
    private static readonly ConditionalWeakTable<IDocumentSession, Dictionary<Guid, RegistryCredentialSecret?>> ResolvedWith = new();

    public async Task<CreatePod> ResolveAsync(IDocumentSession session, CreatePod create, CancellationToken ct)
    {
        PodDecider.Validate(create.Spec, create.Replicas);
        var reference = ImageReference.Parse(create.Spec.Image);
        var recalled = credentials.TryRecall(create.TenantId, reference.Registry, out var secret);
        if (!recalled) secret = await credentials.ReadAsync(session, create.TenantId, reference.Registry, ct);
        ResolvedImage image;
        try
        {
            image = await ResolveImageAsync(create, reference, secret, ct);
        }
        catch (DomainException) when (recalled)
        {
            // Refused with what this node remembered: the tenant may have added or replaced its credential since.
            var current = await credentials.ReadAsync(session, create.TenantId, reference.Registry, ct);
            if (RegistryCredentials.Same(secret, current)) throw;
            secret = current;
            image = await ResolveImageAsync(create, reference, secret, ct);
        }
        ResolvedWith.GetOrCreateValue(session)[create.PodId] = secret;
        return create with { Image = image };
    }

    public void ReadAheadForCreate(ReadAhead ahead, IDocumentSession session, CreatePod create)
    {
        if (create.Image is { } image && ResolvedWith.TryGetValue(session, out var resolved) && resolved.ContainsKey(create.PodId))
            RegistryCredentials.ReadAheadForConfirm(ahead, create.TenantId, image.Registry);
    }

    public async Task<CreatePod> ConfirmAsync(IDocumentSession session, CreatePod create, CancellationToken ct)
    {
        if (create.Image is not { } image || !ResolvedWith.TryGetValue(session, out var resolved) || !resolved.Remove(create.PodId, out var secret))
            return create;
        var current = await credentials.ReadAsync(session, create.TenantId, image.Registry, ct);
        if (!RegistryCredentials.Same(secret, current))
        {
            // Added, replaced or removed since this node last read it: resolved again with what the transaction sees (rare).
            create = create with { Image = await ResolveImageAsync(create, ImageReference.Parse(create.Spec.Image), current, ct) };
            secret = current;
        }
        if (credentials.Open(secret, image.Registry) is not { } auth) return create;
        var sealedCredential = await RegistryCredentials.SealForHostsAsync(session, create.TenantId, image.Registry, auth, ct)
            ?? throw new DomainException(ErrorCode.Precondition,
                $"image '{create.Spec.Image}' needs the credential for {image.Registry}, and no host runtime has announced the key to seal it for them yet");
        session.Store(new PodPullSecret { Id = create.PodId, TenantId = create.TenantId, Credential = sealedCredential });
        return create;
    }

    private async Task<ResolvedImage> ResolveImageAsync(CreatePod create, ImageReference reference, RegistryCredentialSecret? secret, CancellationToken ct)
    {
        var auth = credentials.Open(secret, reference.Registry);
        ResolvedImage image;
        try
        {
            image = await resolver.ResolveAsync(reference, auth, ct);
        }
        catch (RegistryException e)
        {
            throw e.Failure switch
            {
                RegistryFailure.Unreachable => new DomainException(ErrorCode.Precondition,
                    $"image '{create.Spec.Image}' ({reference}): the registry {reference.Registry} cannot be reached: {e.Message}"),
                RegistryFailure.NotFound => DomainException.Validation($"image '{create.Spec.Image}' ({reference}) does not exist: {e.Message}"),
                RegistryFailure.Unauthorized when auth is null => DomainException.Validation(
                    $"image '{create.Spec.Image}' ({reference}): {e.Message}; if it is private, add a credential for {reference.Registry} with addRegistryCredential"),
                _ => DomainException.Validation($"image '{create.Spec.Image}' ({reference}): {e.Message}"),
            };
        }
        if (image.Entrypoint.Count == 0 && image.Cmd.Count == 0 && create.Spec.Command.Count == 0)
            throw DomainException.Validation($"image '{create.Spec.Image}' has no Entrypoint or Cmd: give the pod a command.");
        return image;
    }

    /// <summary>What a boot command carries of the pod's image: the digest to pull, and the pull credential sealed for the host runtimes.</summary>
    public async Task<OciImage?> ForBootAsync(IQuerySession session, Pod pod)
    {
        if (pod.Image is not { } image) return null;
        var secret = await ReadAhead.LoadAsync<PodPullSecret, Guid>(session, pod.Id);
        return new OciImage(image.Registry, image.Repository, image.Digest, secret?.TenantId == pod.TenantId ? secret.Credential : null);
    }

    public void ReadAheadForBoots(ReadAhead ahead, IReadOnlyCollection<Pod> pods) =>
        ahead.LoadMany<PodPullSecret, Guid>(pods.Where(p => p.Image is not null).Select(p => p.Id), s => s.Id);

    public void Release(IDocumentSession session, Pod pod) => session.Delete<PodPullSecret>(pod.Id);
}
