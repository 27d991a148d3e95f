using System.Text.RegularExpressions;
using Kraud.Domain.Common;

namespace Kraud.Domain.Images;

/// <summary>
/// An OCI image reference as Docker reads it: <c>[registry[:port]/]repository[:tag][@sha256:…]</c>. A first component
/// with a '.' or ':' or named localhost is a registry; otherwise the image is on Docker Hub (docker.io), where a
/// single-component name is an official image under library/. Without tag or digest the tag is latest.
/// </summary>
public sealed partial record ImageReference(string Registry, string Repository, string? Tag, string? Digest)
{
    public const string DockerHub = "docker.io";

    /// <summary>The normalized name: <c>docker.io/library/busybox:latest</c>, or with the digest when one was given.</summary>
    public string Canonical => $"{Registry}/{Repository}" + (Digest is not null ? $"@{Digest}" : $":{Tag}");

    /// <summary>registry/repository, without tag or digest.</summary>
    public string Name => $"{Registry}/{Repository}";

    /// <summary>What a manifest request asks for: the digest when pinned, else the tag.</summary>
    public string ManifestReference => Digest ?? Tag!;

    public override string ToString() => Canonical;

    /// <exception cref="DomainException">VALIDATION, naming the reference and what is wrong with it.</exception>
    public static ImageReference Parse(string reference)
    {
        if (string.IsNullOrWhiteSpace(reference)) throw DomainException.Validation("image must not be empty.");
        if (reference.Length > 500 || reference.Any(char.IsWhiteSpace))
            throw DomainException.Validation($"image '{reference}' is not an image reference (at most 500 characters, no white space).");
        var rest = reference;
        string? digest = null;
        var at = rest.IndexOf('@');
        if (at >= 0)
        {
            digest = rest[(at + 1)..];
            rest = rest[..at];
            if (!DigestPattern().IsMatch(digest))
                throw DomainException.Validation($"image '{reference}': '{digest}' is not a digest (sha256: and 64 lowercase hex digits).");
        }
        string? tag = null;
        var lastSlash = rest.LastIndexOf('/');
        var colon = rest.LastIndexOf(':');
        if (colon > lastSlash)
        {
            tag = rest[(colon + 1)..];
            rest = rest[..colon];
            if (!TagPattern().IsMatch(tag))
                throw DomainException.Validation($"image '{reference}': '{tag}' is not a tag (letters, digits, '_', '.', '-'; at most 128).");
        }
        var registry = DockerHub;
        var slash = rest.IndexOf('/');
        if (slash > 0 && IsRegistry(rest[..slash]))
        {
            registry = NormalizeRegistry(rest[..slash]);
            rest = rest[(slash + 1)..];
        }
        if (rest.Length == 0 || rest.Split('/').Any(c => !ComponentPattern().IsMatch(c)))
            throw DomainException.Validation(
                $"image '{reference}': '{rest}' is not a repository name (lowercase letters and digits, separated by '.', '_', '__', '-' or '/').");
        if (registry == DockerHub && !rest.Contains('/')) rest = "library/" + rest;
        if (registry.Length + 1 + rest.Length > 255) throw DomainException.Validation($"image '{reference}': the name is longer than 255 characters.");
        return new ImageReference(registry, rest, tag ?? (digest is null ? "latest" : null), digest);
    }

    /// <summary>
    /// A registry as credentials and settings name it: lowercase host[:port], Docker Hub's aliases folded into docker.io.
    /// </summary>
    public static string NormalizeRegistry(string registry)
    {
        var host = registry.Trim().ToLowerInvariant();
        if (host.StartsWith("https://", StringComparison.Ordinal)) host = host["https://".Length..];
        else if (host.StartsWith("http://", StringComparison.Ordinal)) host = host["http://".Length..];
        host = host.TrimEnd('/');
        return host is "index.docker.io" or "registry-1.docker.io" or "registry.hub.docker.com" ? DockerHub : host;
    }

    /// <summary>host[:port] as a registry may be named: DNS name or IPv4, optional port.</summary>
    public static bool IsRegistryName(string registry) => RegistryPattern().IsMatch(registry);

    private static bool IsRegistry(string component) =>
        (component.Contains('.') || component.Contains(':') || component == "localhost") && RegistryPattern().IsMatch(component.ToLowerInvariant());

    public static bool IsDigest(string value) => DigestPattern().IsMatch(value);

    [GeneratedRegex("^sha256:[a-f0-9]{64}$", RegexOptions.None, matchTimeoutMilliseconds: 1000)]
    private static partial Regex DigestPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", RegexOptions.None, matchTimeoutMilliseconds: 1000)]
    private static partial Regex TagPattern();

    [GeneratedRegex("^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$", RegexOptions.None, matchTimeoutMilliseconds: 1000)]
    private static partial Regex ComponentPattern();

    [GeneratedRegex(@"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))*(?::[0-9]{1,5})?$", RegexOptions.None, matchTimeoutMilliseconds: 1000)]
    private static partial Regex RegistryPattern();
}

/// <summary>
/// What createPod resolved an image to: the manifest digest for linux/amd64 that every microVM of the pod runs, and the
/// image's own Entrypoint and Cmd (the pod's command replaces Cmd, as Docker does).
/// </summary>
public sealed record ResolvedImage(string Reference, string Registry, string Repository, string Digest,
    IReadOnlyList<string> Entrypoint, IReadOnlyList<string> Cmd);
