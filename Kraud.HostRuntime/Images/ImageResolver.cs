using Kraud.Domain.Images;

namespace Kraud.HostRuntime.Images;

/// <summary>
/// Resolves an image reference to what a pod runs: the manifest for linux/amd64 (picked from an index when the tag names a
/// multi-platform image), pinned by digest, with the image's Entrypoint and Cmd. Its config is fetched and checked too, so
/// an image for another platform is refused before any host tries it.
/// </summary>
public sealed class ImageResolver(DistributionClient registry)
{
    public const string Os = "linux", Architecture = "amd64";

    public async Task<ResolvedImage> ResolveAsync(ImageReference reference, RegistryAuth? auth, CancellationToken ct)
    {
        var document = await registry.GetManifestAsync(reference.Registry, reference.Repository, reference.ManifestReference, auth, ct);
        if (document.IsIndex)
        {
            var platforms = document.Platforms();
            var match = platforms.FirstOrDefault(p => p.Os == Os && p.Architecture == Architecture && p.Variant is null or "v1")
                        ?? platforms.FirstOrDefault(p => p.Os == Os && p.Architecture == Architecture)
                        ?? throw new RegistryException(RegistryFailure.Invalid,
                            $"{reference} has no {Os}/{Architecture} image (it has {string.Join(", ", platforms.Select(p => $"{p.Os}/{p.Architecture}{(p.Variant is null ? "" : "/" + p.Variant)}").Distinct())})");
            document = await registry.GetManifestAsync(reference.Registry, reference.Repository, match.Descriptor.Digest, auth, ct);
            if (document.IsIndex) throw new RegistryException(RegistryFailure.Invalid, $"{reference}: the index for {Os}/{Architecture} points at another index");
        }
        var config = ImageRunConfig.Parse(await registry.GetBlobBytesAsync(reference.Registry, reference.Repository, document.Config(), auth, ct));
        if (config.Os != Os || config.Architecture != Architecture)
            throw new RegistryException(RegistryFailure.Invalid, $"{reference} is an image for {config.Os}/{config.Architecture}; Kraud runs {Os}/{Architecture}");
        foreach (var layer in document.Layers())
            if (MediaTypes.OciLayerType(layer.MediaType) is null)
                throw new RegistryException(RegistryFailure.Invalid, $"{reference} has a layer of type {layer.MediaType}, which Kraud cannot unpack");
        return new ResolvedImage(reference.Canonical, reference.Registry, reference.Repository, document.Digest, config.Entrypoint, config.Cmd);
    }
}
